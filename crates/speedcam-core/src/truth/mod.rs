//! Ground truth of synthetic scenes: the `truth.json` format ([`SceneTruth`], with the
//! [`SceneSpec`] it was rendered from), the pinhole [`camera`] model those scenes are seen
//! through, and [`compare`], which matches measurements to the truth (how the demo and the
//! end-to-end tests score speed accuracy). The renderer itself is `speedcam-synth`.

pub mod camera;
pub mod compare;

pub use compare::{compare_table, load_truth, match_measurements, verdict_vehicles};

use camera::CameraSpec;
use serde::{Deserialize, Serialize};

/// Vehicle class of the synthetic scenes; sets the vehicle's real size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VehicleClass {
    /// Passenger car: 4.6 m long, 1.8 m wide, 1.45 m tall.
    Car,
    /// Pickup / light truck (the demo's sprite): 5.3 m long, 1.9 m wide, 1.9 m tall. The
    /// accuracy benchmark's hard families draw rigid lorries of their own size under this class
    /// (a detector reports both as "truck").
    Truck,
    /// Van / minibus: 5.3 m long, 2.0 m wide, 2.3 m tall. COCO detectors have no such class: they
    /// report it as "car" or "truck".
    Van,
    /// Bus / coach: 12 m long, 2.55 m wide, 3.2 m tall.
    Bus,
}

impl VehicleClass {
    /// Every class, in declaration order.
    pub const ALL: [VehicleClass; 4] = [
        VehicleClass::Car,
        VehicleClass::Truck,
        VehicleClass::Van,
        VehicleClass::Bus,
    ];

    /// Real (length, height) in metres (the demo renderer's billboard size).
    pub fn dimensions_m(self) -> (f64, f64) {
        match self {
            VehicleClass::Car => (4.6, 1.45),
            VehicleClass::Truck => (5.3, 1.9),
            VehicleClass::Van => (5.3, 2.3),
            VehicleClass::Bus => (12.0, 3.2),
        }
    }

    /// Real width in metres.
    pub fn width_m(self) -> f64 {
        match self {
            VehicleClass::Car => 1.8,
            VehicleClass::Truck => 1.9,
            VehicleClass::Van => 2.0,
            VehicleClass::Bus => 2.55,
        }
    }

    /// Real `[length, width, height]` in metres.
    pub fn size_m(self) -> [f64; 3] {
        let (length_m, height_m) = self.dimensions_m();
        [length_m, self.width_m(), height_m]
    }

    /// Lower-case name, as in `truth.json` ("car", "truck", "van", "bus").
    pub fn name(self) -> &'static str {
        match self {
            VehicleClass::Car => "car",
            VehicleClass::Truck => "truck",
            VehicleClass::Van => "van",
            VehicleClass::Bus => "bus",
        }
    }
}

/// Direction of travel along the road.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Towards +x.
    #[serde(rename = "+x")]
    PlusX,
    /// Towards -x.
    #[serde(rename = "-x")]
    MinusX,
}

impl Direction {
    /// +1 for travel towards +x, -1 towards -x.
    pub fn sign(self) -> f64 {
        match self {
            Direction::PlusX => 1.0,
            Direction::MinusX => -1.0,
        }
    }
}

/// One vehicle of a scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleSpec {
    /// Identifier, unique within the scene.
    pub id: u32,
    /// Class (sets the real size).
    pub class: VehicleClass,
    /// Embedded sprite name (see `speedcam_synth::sprite::SPRITE_NAMES`), or a sprite set's
    /// selector (`"set:training"`, `"set:heldout"`: the renderer picks one of the set's sprites
    /// of this class, see `speedcam_synth::sprite::SpriteSet`); mirrored as needed for the
    /// direction.
    pub sprite: String,
    /// Real `[length, width, height]` (m) when this vehicle has its own size; `None` (the default,
    /// omitted from JSON): the sprite's own size for rendered sprites, the class's for photos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_m: Option<[f64; 3]>,
    /// Lane index, 0 = nearest a camera standing at negative y.
    pub lane: u32,
    /// Direction of travel.
    pub direction: Direction,
    /// Speed when it appears (km/h).
    pub speed_kmh: f64,
    /// Constant acceleration along its direction (m/s^2; negative slows down).
    pub accel_mps2: f64,
    /// Time it appears, just out of view upstream (s).
    pub t_start_s: f64,
}

/// Everything that defines a scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneSpec {
    /// Image width (px, even).
    pub width_px: u32,
    /// Image height (px, even).
    pub height_px: u32,
    /// Nominal frame rate (Hz).
    pub fps: f64,
    /// Video length (s).
    pub duration_s: f64,
    /// The camera (the road runs along world x through y = 0).
    pub camera: CameraSpec,
    /// Number of lanes (2..=4).
    pub lanes: u32,
    /// Length of the measurement zone along the road (m).
    pub zone_length_m: f64,
    /// The vehicles.
    pub vehicles: Vec<VehicleSpec>,
    /// Seed for textures and frame-time jitter.
    pub seed: u64,
    /// Frame times are `i / fps` plus uniform noise in `[-jitter_ms, +jitter_ms]` (ms).
    pub jitter_ms: f64,
}

/// One rendered frame of a vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthSample {
    /// Frame index.
    pub frame: u32,
    /// Presentation time (s).
    pub t_s: f64,
    /// Ground position of the footprint centre (m).
    pub ground_m: [f64; 2],
    /// Billboard box `[left, top, right, bottom]` (px); may extend past the image edges.
    pub bbox_px: [f64; 4],
    /// Fraction of the box area covered by nearer vehicles (0..1).
    pub occluded: f64,
}

/// Ground truth for one vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleTruth {
    /// Identifier from the spec.
    pub id: u32,
    /// Class.
    pub class: VehicleClass,
    /// Lane index.
    pub lane: u32,
    /// Direction of travel.
    pub direction: Direction,
    /// Speed when it appears (km/h).
    pub speed_kmh: f64,
    /// Acceleration (m/s^2).
    pub accel_mps2: f64,
    /// When its reference point enters the zone (s), if it ever does.
    pub zone_entry_s: Option<f64>,
    /// When its reference point leaves the zone (s), if it ever does.
    pub zone_exit_s: Option<f64>,
    /// Entered and left the zone between the first and last frame times.
    pub crossed_zone: bool,
    /// True mean speed over the zone (km/h): zone length / crossing time.
    pub zone_speed_kmh: Option<f64>,
    /// Frames in which it is (at least partly) in the image.
    pub samples: Vec<TruthSample>,
}

/// Ground truth of a rendered scene (also written as `truth.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneTruth {
    /// The spec that was rendered.
    pub spec: SceneSpec,
    /// Number of frames in `scene.mp4`.
    pub frames: u32,
    /// Presentation time of each frame (s), exactly as stored in the MP4 (90 kHz ticks).
    pub frame_times_s: Vec<f64>,
    /// Zone rectangle on the ground (m), corners in order.
    pub zone_world_m: Vec<[f64; 2]>,
    /// Zone polygon in the image (px), the projection of `zone_world_m`.
    pub zone_polygon_px: Vec<[f64; 2]>,
    /// Calibration points in the image (px).
    pub calibration_image_px: Vec<[f64; 2]>,
    /// The same points on the ground (m).
    pub calibration_world_m: Vec<[f64; 2]>,
    /// Per-vehicle truth.
    pub vehicles: Vec<VehicleTruth>,
}
