//! Renders the demo camera's road empty for 6 s, then with one car driving through: the scene for
//! the adaptive-skipping figures (`speedcamd bench` on it counts skipped frames on the empty
//! road and shows when the car is first detected).
//!
//! `cargo run --release --example empty_road -- OUT_DIR`, then
//! `speedcamd bench --config config/demo.toml --video OUT_DIR/scene.mp4` (same camera, so the
//! demo calibration applies). The car's truth is in OUT_DIR/truth.json.

use speedcam_synth::{demo_scene, render};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).ok_or("usage: empty_road OUT_DIR")?;
    let mut spec = demo_scene();
    spec.duration_s = 12.0;
    // Keep one car, starting after 6 s of empty road.
    spec.vehicles.retain(|v| v.id == 1);
    spec.vehicles[0].t_start_s = 6.0;
    let truth = render(&spec, std::path::Path::new(&out))?;
    for v in &truth.vehicles {
        println!(
            "vehicle {} {:.1} km/h starts {:.2} s, zone {:?}..{:?}",
            v.id, v.speed_kmh, spec.vehicles[0].t_start_s, v.zone_entry_s, v.zone_exit_s
        );
    }
    println!("{} frames into {out}", truth.frames);
    Ok(())
}
