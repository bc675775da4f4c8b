//! `[[cameras]]`: each camera's source, speed limit, image size, calibration, zone and speed
//! method, and its `[cameras.*]` tables (live source settings, replay, reconnect, schedule).

use super::Validator;
use crate::config::raw::{RawCamera, RawReconnect, RawSchedule};
use crate::config::{resolve_path, resolve_source, valid_topic_id, CameraConfig, ReconnectConfig};
use crate::speed::{
    CalibrationReport, GroundContact, Homography, SpeedConfig, SpeedLines, SpeedMethod, Zone,
};
use std::path::{Path, PathBuf};
use toml::Spanned;

impl Validator<'_> {
    /// Every `[[cameras]]` table (at least one); ids must be unique.
    pub(super) fn cameras(&mut self, raw: &[Spanned<RawCamera>], base: &Path) -> Vec<CameraConfig> {
        if raw.is_empty() {
            self.problem("cameras", 0..0, "no camera configured: add at least one [[cameras]] table with id, source, speed_limit_kmh, calibration and zone");
        }
        let mut cameras = Vec::new();
        for (i, c) in raw.iter().enumerate() {
            if let Some(cam) = self.camera(i, c, base) {
                if cameras.iter().any(|o: &CameraConfig| o.id == cam.id) {
                    self.problem(
                        format!("cameras[{i}].id"),
                        c.get_ref().id.span(),
                        format!("{:?} is used by another camera: ids must be unique", cam.id),
                    );
                }
                cameras.push(cam);
            }
        }
        cameras
    }

    /// `[[cameras]]` number `i`: None when its geometry cannot be built (problems recorded).
    fn camera(&mut self, i: usize, c: &Spanned<RawCamera>, base: &Path) -> Option<CameraConfig> {
        let c = c.get_ref();
        let k = |s: &str| format!("cameras[{i}].{s}");
        let id = c.id.get_ref().clone();
        if !valid_topic_id(&id) {
            self.problem(k("id"), c.id.span(), format!("{id:?} is not allowed: use 1-64 letters, digits, '-' or '_' (it becomes an MQTT topic level)"));
        }
        let source = self.camera_source(i, c, base);
        let limit = *c.speed_limit_kmh.get_ref();
        if !(1.0..=400.0).contains(&limit) {
            self.problem(
                k("speed_limit_kmh"),
                c.speed_limit_kmh.span(),
                format!("{limit} is out of range: allowed 1 to 400"),
            );
        }
        let tolerance = self.float(&k("tolerance_kmh"), &c.tolerance_kmh, 0.0, 0.0, 100.0);
        let min_samples = self.int(
            &k("min_samples_in_zone"),
            &c.min_samples_in_zone,
            SpeedConfig::default().min_samples as i64,
            2,
            10_000,
        ) as u32;
        let max_speed = self.float(
            &k("max_speed_kmh"),
            &c.max_speed_kmh,
            SpeedConfig::default().max_speed_kmh,
            10.0,
            1000.0,
        );
        let reconnect = self.reconnect(i, c.reconnect.as_ref());
        let schedule = self.schedule(i, c.schedule.as_ref());
        let live = self.live(i, c, base);
        let image_size = self.image_size(i, c);
        let fitted = self.calibration(i, c);
        let ip = &c.calibration.image_points;
        let wp = &c.calibration.world_points;
        let zp = &c.zone.polygon;
        let zone = match Zone::new(zp.get_ref().clone()) {
            Ok(z) => Some(z),
            Err(e) => {
                self.problem(k("zone.polygon"), zp.span(), format!("{e}"));
                None
            }
        };
        if let Some((w, h)) = image_size {
            self.check_inside(&k("zone.polygon"), zp, w, h);
            self.check_inside(&k("calibration.image_points"), ip, w, h);
        }
        let method = self.speed_method(i, c, &zone, image_size);
        let (homography, calibration_report) = fitted?;
        let zone = zone?;
        self.zone_length(i, zp, &zone, &homography);
        Some(CameraConfig {
            id,
            source,
            speed_limit_kmh: limit,
            tolerance_kmh: tolerance,
            strict: c.strict.unwrap_or(false),
            image_size,
            image_points: ip.get_ref().clone(),
            world_points: wp.get_ref().clone(),
            zone_polygon: zp.get_ref().clone(),
            homography,
            calibration_report,
            zone,
            speed: SpeedConfig {
                min_samples,
                max_speed_kmh: max_speed,
                method: method?,
                box_bottom_sd_px: self.box_bottom_sd_px,
                ground_contact: self.ground_contact(i, c),
                ..SpeedConfig::default()
            },
            reconnect,
            schedule,
            live,
        })
    }

    /// `source`: a file path (resolved against the config's directory) or a URI, non-empty; a
    /// V4L2 device needs the `v4l2` feature.
    fn camera_source(&mut self, i: usize, c: &RawCamera, base: &Path) -> String {
        let k = |s: &str| format!("cameras[{i}].{s}");
        let source = resolve_source(base, c.source.get_ref());
        if source.is_empty() {
            self.problem(
                k("source"),
                c.source.span(),
                "empty: give file:///path/video.mp4 or a path to an MP4 file",
            );
        }
        if !cfg!(feature = "v4l2") && crate::source::v4l2_device(&source).is_some() {
            self.problem(
                k("source"),
                c.source.span(),
                format!(
                    "{source:?} is a V4L2 camera, but {}",
                    crate::source::capture::NOT_BUILT
                ),
            );
        }
        source
    }

    /// `image_width` and `image_height`, both or neither.
    fn image_size(&mut self, i: usize, c: &RawCamera) -> Option<(u32, u32)> {
        let k = |s: &str| format!("cameras[{i}].{s}");
        match (&c.image_width, &c.image_height) {
            (None, None) => None,
            (Some(_), Some(_)) => Some((
                self.int(&k("image_width"), &c.image_width, 1, 16, 16384) as u32,
                self.int(&k("image_height"), &c.image_height, 1, 16, 16384) as u32,
            )),
            (Some(w), None) => {
                self.problem(
                    k("image_height"),
                    w.span(),
                    "missing: set image_width and image_height together",
                );
                None
            }
            (None, Some(h)) => {
                self.problem(
                    k("image_width"),
                    h.span(),
                    "missing: set image_width and image_height together",
                );
                None
            }
        }
    }

    /// `[cameras.calibration]`: finite image and ground points, and the homography fitted to
    /// them; None when they cannot be fitted (problems recorded).
    fn calibration(&mut self, i: usize, c: &RawCamera) -> Option<(Homography, CalibrationReport)> {
        let k = |s: &str| format!("cameras[{i}].{s}");
        let ip = &c.calibration.image_points;
        let wp = &c.calibration.world_points;
        let mut ok = true;
        for (name, pts) in [
            ("calibration.image_points", ip),
            ("calibration.world_points", wp),
        ] {
            if pts.get_ref().iter().flatten().any(|x| !x.is_finite()) {
                self.problem(
                    k(name),
                    pts.span(),
                    "contains a non-finite number: give [x, y] pairs of plain numbers",
                );
                ok = false;
            }
        }
        if ok {
            match Homography::fit(ip.get_ref(), wp.get_ref()) {
                Ok(h) => Some(h),
                Err(e) => {
                    self.problem(k("calibration"), ip.span(), format!("{e}"));
                    None
                }
            }
        } else {
            None
        }
    }

    /// The zone's length on the ground: at least 2 m, and all of it below the horizon.
    fn zone_length(
        &mut self,
        i: usize,
        zp: &Spanned<Vec<[f64; 2]>>,
        zone: &Zone,
        homography: &Homography,
    ) {
        let k = |s: &str| format!("cameras[{i}].{s}");
        if let Some(len) = zone.length_m(homography) {
            if len < 2.0 {
                self.problem(k("zone.polygon"), zp.span(), format!("the zone is only {len:.1} m long on the ground: make it at least 2 m (10-30 m gives accurate speeds)"));
            }
        } else {
            self.problem(k("zone.polygon"), zp.span(), "part of the zone lies at or above the horizon of the calibration: keep it on the road surface");
        }
    }

    /// `[cameras.rtsp]` and `[cameras.v4l2]`.
    fn live(&mut self, i: usize, c: &RawCamera, base: &Path) -> crate::source::LiveSettings {
        use crate::source::RtspTransport;
        let k = |s: &str| format!("cameras[{i}].{s}");
        let mut live = crate::source::LiveSettings::default();
        if let Some(d) = &c.decoder {
            let name = d.get_ref();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            {
                self.problem(k("decoder"), d.span(), format!("{name:?} is not a decoder name: give a libavcodec decoder such as \"h264_v4l2m2m\" (list them with `ffmpeg -decoders`), or remove the key for the built-in choice"));
            } else if !cfg!(feature = "ffmpeg") {
                self.problem(k("decoder"), d.span(), format!("{name:?} needs a build with `--features ffmpeg` (libavcodec); this build decodes H.264 with its built-in decoder only: remove the key or rebuild"));
            } else {
                live.decoder = Some(name.clone());
            }
        }
        if let Some(r) = &c.rtsp {
            if let Some(t) = &r.transport {
                match t.get_ref().to_ascii_lowercase().as_str() {
                    "tcp" => live.rtsp_transport = RtspTransport::Tcp,
                    "udp" => live.rtsp_transport = RtspTransport::Udp,
                    other => self.problem(k("rtsp.transport"), t.span(), format!("{other:?} is not a transport: allowed \"tcp\" (interleaved, the default: lossless and NAT-friendly) or \"udp\" (clean LANs only)")),
                }
            }
            if let Some(f) = &r.credentials_file {
                let v = f.get_ref();
                if v.is_empty() {
                    self.problem(k("rtsp.credentials_file"), f.span(), "empty: give a file holding `username:password` (or username and password on two lines), e.g. $CREDENTIALS_DIRECTORY/cam1 with systemd LoadCredential=");
                } else if v.starts_with('$') {
                    live.credentials_file = Some(PathBuf::from(v));
                } else {
                    live.credentials_file = Some(resolve_path(base, v));
                }
            }
        }
        if let Some(v) = &c.v4l2 {
            let dim = |this: &mut Self, key: &str, x: &Option<Spanned<i64>>, hi: i64| {
                x.as_ref().map(|_| this.int(&k(key), x, 0, 1, hi) as u32)
            };
            live.capture_width = dim(self, "v4l2.width", &v.width, 16384);
            live.capture_height = dim(self, "v4l2.height", &v.height, 16384);
            live.capture_fps = dim(self, "v4l2.fps", &v.fps, 1000);
            if let Some(f) = &v.format {
                match f.get_ref().parse() {
                    Ok(x) => live.capture_format = Some(x),
                    Err(e) => self.problem(k("v4l2.format"), f.span(), e),
                }
            }
        }
        live.replay = self.replay(i, c);
        live
    }

    /// `[cameras.replay]`: real-time and looped playback of a file source (daemon only).
    fn replay(&mut self, i: usize, c: &RawCamera) -> crate::source::replay::ReplaySettings {
        let Some(r) = &c.replay else {
            return Default::default();
        };
        if crate::source::is_live_uri(c.source.get_ref()) {
            self.problem(
                format!("cameras[{i}].replay"),
                r.span(),
                "applies to recorded files only, and this camera's source is a live camera: \
                 remove [cameras.replay], or point source at a video file",
            );
        }
        let r = r.get_ref();
        crate::source::replay::ReplaySettings {
            realtime: r.realtime.unwrap_or(false),
            looped: r.looped.unwrap_or(false),
        }
    }

    /// `[cameras.reconnect]`: backoff bounds and the stall timeout, in seconds.
    fn reconnect(&mut self, i: usize, r: Option<&RawReconnect>) -> ReconnectConfig {
        let d = ReconnectConfig::default();
        let Some(r) = r else { return d };
        let k = |s: &str| format!("cameras[{i}].reconnect.{s}");
        let initial = self.float(
            &k("initial_s"),
            &r.initial_s,
            d.initial.as_secs_f64(),
            0.1,
            600.0,
        );
        let max = self.float(
            &k("max_s"),
            &r.max_s,
            d.max.as_secs_f64().max(initial),
            0.1,
            3600.0,
        );
        if max < initial {
            let span = r.max_s.as_ref().map(|s| s.span()).unwrap_or(0..0);
            self.problem(k("max_s"), span, format!("{max} is below initial_s = {initial}: the cap must be at least the first delay"));
        }
        let stall = self.float(
            &k("stall_timeout_s"),
            &r.stall_timeout_s,
            d.stall_timeout.as_secs_f64(),
            1.0,
            600.0,
        );
        let secs = std::time::Duration::from_secs_f64;
        ReconnectConfig {
            initial: secs(initial),
            max: secs(max.max(initial)),
            stall_timeout: secs(stall),
        }
    }

    /// `[cameras.schedule]`: detection rates and the motion check's thresholds.
    fn schedule(&mut self, i: usize, r: Option<&RawSchedule>) -> crate::schedule::ScheduleConfig {
        use crate::schedule::{MotionConfig, ScheduleConfig};
        let d = ScheduleConfig::default();
        let Some(r) = r else { return d };
        let k = |s: &str| format!("cameras[{i}].schedule.{s}");
        let adaptive = r.adaptive.as_ref().map_or(d.adaptive, |a| *a.get_ref());
        let min_hz = self.float(
            &k("min_detect_hz"),
            &r.min_detect_hz,
            d.min_detect_hz,
            0.05,
            120.0,
        );
        let max_hz = r
            .max_detect_hz
            .as_ref()
            .map(|_| self.float(&k("max_detect_hz"), &r.max_detect_hz, 30.0, 0.05, 240.0));
        if let (Some(max), Some(span)) = (max_hz, &r.max_detect_hz) {
            if max < min_hz {
                self.problem(
                    k("max_detect_hz"),
                    span.span(),
                    format!("{max} is below min_detect_hz = {min_hz}: the busy rate cap must be at least the idle rate"),
                );
            }
        }
        let motion_hz = self.float(
            &k("motion_detect_hz"),
            &r.motion_detect_hz,
            d.motion_detect_hz.max(min_hz),
            0.05,
            240.0,
        );
        let approach_s = self.float(&k("approach_s"), &r.approach_s, d.approach_s, 0.0, 10.0);
        let dm = MotionConfig::default();
        let motion = MotionConfig {
            delta_levels: self.float(
                &k("motion_delta"),
                &r.motion_delta,
                dm.delta_levels as f64,
                1.0,
                255.0,
            ) as f32,
            min_area_px2: self.float(
                &k("motion_min_area_px"),
                &r.motion_min_area_px,
                dm.min_area_px2 as f64,
                1.0,
                1e7,
            ) as f32,
            background_s: self.float(
                &k("motion_background_s"),
                &r.motion_background_s,
                dm.background_s,
                0.1,
                600.0,
            ),
        };
        ScheduleConfig {
            adaptive,
            min_detect_hz: min_hz,
            max_detect_hz: max_hz,
            motion_detect_hz: motion_hz,
            approach_s,
            motion,
        }
    }

    /// `method` and `[cameras.lines]`: None (with problems recorded) when they do not fit together.
    /// `ground_contact`: "cuboid" (default: real vehicles, a class-size box on the road) or
    /// "box_bottom" (flat sprites, or a detector trained to box the ground contact).
    fn ground_contact(&mut self, i: usize, c: &RawCamera) -> GroundContact {
        let Some(v) = &c.ground_contact else {
            return GroundContact::Cuboid;
        };
        match v.get_ref().as_str() {
            "cuboid" => GroundContact::Cuboid,
            "box_bottom" => GroundContact::BoxBottom,
            other => {
                self.problem(
                    format!("cameras[{i}].ground_contact"),
                    v.span(),
                    format!(
                        "{other:?} is not a ground contact model: allowed \"cuboid\" (real \
                         vehicles; the default) or \"box_bottom\" (flat sprites, or boxes drawn \
                         around the tyres' contact)"
                    ),
                );
                GroundContact::Cuboid
            }
        }
    }

    fn speed_method(
        &mut self,
        i: usize,
        c: &RawCamera,
        zone: &Option<Zone>,
        image_size: Option<(u32, u32)>,
    ) -> Option<SpeedMethod> {
        let k = |s: &str| format!("cameras[{i}].{s}");
        let method = c.method.as_ref().map(|m| m.get_ref().as_str());
        let span = c.method.as_ref().map(|m| m.span()).unwrap_or(0..0);
        let lines = match (method, &c.lines) {
            (None | Some("fit"), _) => return Some(SpeedMethod::Fit),
            (Some("lines"), Some(l)) => l,
            (Some("lines"), None) => {
                self.problem(k("method"), span, "\"lines\" needs a [cameras.lines] table: first = [[x, y], [x, y]] and second = [[x, y], [x, y]] (image px, two lines across the road) and distance_m (their distance on the road, m)");
                return None;
            }
            (Some(other), _) => {
                self.problem(
                    k("method"),
                    span,
                    format!("{other:?} is not a speed method: allowed \"fit\" (least squares over the zone, the default) or \"lines\" (time between two lines a known distance apart)"),
                );
                return None;
            }
        };
        let raw = lines.get_ref();
        let l = SpeedLines {
            first_px: *raw.first.get_ref(),
            second_px: *raw.second.get_ref(),
            distance_m: *raw.distance_m.get_ref(),
        };
        if let Err(e) = l.validate() {
            self.problem(k("lines"), lines.span(), e.to_string());
            return None;
        }
        let mut ok = true;
        for (name, line) in [("lines.first", &raw.first), ("lines.second", &raw.second)] {
            let [a, b] = *line.get_ref();
            let mid = [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
            if let Some((w, h)) = image_size {
                if [a, b]
                    .iter()
                    .any(|p| !(0.0..=w as f64).contains(&p[0]) || !(0.0..=h as f64).contains(&p[1]))
                {
                    self.problem(
                        k(name),
                        line.span(),
                        format!(
                            "an end point is outside the {w}x{h} image: allowed x 0..{w}, y 0..{h}"
                        ),
                    );
                    ok = false;
                }
            }
            if zone.as_ref().is_some_and(|z| !z.contains(mid)) {
                self.problem(k(name), line.span(), format!("the line's middle [{:.0}, {:.0}] is outside the zone: detections are taken inside the zone only, so the zone must contain both lines with a margin (enlarge cameras.zone.polygon or move the line)", mid[0], mid[1]));
                ok = false;
            }
        }
        ok.then_some(SpeedMethod::Lines(l))
    }

    /// Every point must lie inside a `w x h` image.
    fn check_inside(&mut self, key: &str, pts: &Spanned<Vec<[f64; 2]>>, w: u32, h: u32) {
        if let Some((i, p)) =
            pts.get_ref().iter().enumerate().find(|(_, p)| {
                !(0.0..=w as f64).contains(&p[0]) || !(0.0..=h as f64).contains(&p[1])
            })
        {
            self.problem(
                key,
                pts.span(),
                format!(
                    "point {i} [{}, {}] is outside the {w}x{h} image: allowed x 0..{w}, y 0..{h}",
                    p[0], p[1]
                ),
            );
        }
    }
}
