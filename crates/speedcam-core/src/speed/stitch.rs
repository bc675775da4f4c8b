//! One passage from a track that broke up inside the zone: the fragment that vanished there and
//! the track that picked the same vehicle up again.
//!
//! Why: a vehicle hidden behind another (a bus in the near lane, the car ahead in a queue) or
//! missed for longer than the tracker's patience loses its track mid-zone and gets a new one when
//! it is seen again. Measured apart, the first fragment has no zone exit and the second no zone
//! entry: two verdicts, both wrong (a queued car read at 20-30 km/h over a part of the zone it
//! crossed before stopping). Joined, the samples cover the zone from edge to edge again.
//!
//! The test is kinematic, on the ground: the new track's first point must lie along the lost
//! one's direction of travel, within reach of its last speed (plus a bounded acceleration), and
//! in its lane. A following vehicle appears behind, a vehicle in the next lane beside, so neither
//! is taken for the lost one.

/// Farthest sideways (across the direction of travel) a continuation may start from the lost
/// track's last point, m: well inside a lane's width (3-3.75 m), beyond box noise.
const LATERAL_GATE_M: f64 = 1.5;
/// Slack on the along-track reach, m: box noise and the contact point's jitter.
const ALONG_SLACK_M: f64 = 2.0;
/// Acceleration allowed beyond the lost track's last speed, m/s² (a car leaving a queue).
const ACCEL_REACH_M_S2: f64 = 2.5;
/// Cap on what that acceleration adds to the reach, m.
const ACCEL_REACH_CAP_M: f64 = 12.0;
/// Braking allowed below the lost track's last speed, m/s² (hard braking on a dry road).
const BRAKE_REACH_M_S2: f64 = 7.0;
/// Longest gap between the lost track's last sample and its continuation's first, s, for a
/// vehicle that was moving; a vehicle that stood still may be hidden for as long as the
/// tracker keeps still tracks (`tracker.stationary_max_age_s`) plus this.
pub(crate) const MAX_MOVING_GAP_S: f64 = 3.0;
/// Below this speed, m/s, the lost track counts as standing still.
const STILL_M_S: f64 = 1.0;
/// Samples within this time of the last one give the lost track's final speed, s.
const TAIL_WINDOW_S: f64 = 1.0;
/// A lost track must have moved this far to have a direction of its own, m; else the zone's
/// axis is used, either way along it.
const MIN_DIRECTION_M: f64 = 2.0;

/// Where and how a lost track was going when it was last seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tail {
    /// Time of its last sample, s.
    pub t_s: f64,
    /// Its last ground point, m.
    pub ground_m: [f64; 2],
    /// Unit direction of travel on the ground.
    pub dir: [f64; 2],
    /// Whether `dir` is the track's own (false: the zone axis, and either sign is allowed).
    pub directed: bool,
    /// Speed along `dir` over its last [`TAIL_WINDOW_S`], m/s (0 or more).
    pub speed_m_s: f64,
}

impl Tail {
    /// The tail of a track from its samples `(t_s, ground_m)`, time-ordered. None without samples.
    pub(crate) fn of(points: &[(f64, [f64; 2])], zone_axis: [f64; 2]) -> Option<Tail> {
        let &(t_s, last) = points.last()?;
        let first = points[0].1;
        let d = [last[0] - first[0], last[1] - first[1]];
        let n = d[0].hypot(d[1]);
        let (dir, directed) = if n >= MIN_DIRECTION_M {
            ([d[0] / n, d[1] / n], true)
        } else {
            (zone_axis, false)
        };
        let start = points
            .iter()
            .find(|(t, _)| *t >= t_s - TAIL_WINDOW_S)
            .copied()
            .unwrap_or(points[0]);
        let dt = t_s - start.0;
        let along = (last[0] - start.1[0]) * dir[0] + (last[1] - start.1[1]) * dir[1];
        let speed_m_s = if dt > 0.0 && directed {
            (along / dt).max(0.0)
        } else {
            0.0
        };
        Some(Tail {
            t_s,
            ground_m: last,
            dir,
            directed,
            speed_m_s,
        })
    }

    /// Longest gap after which a track may still continue this one, s.
    pub(crate) fn max_gap_s(&self, still_max_age_s: f64) -> f64 {
        if self.speed_m_s < STILL_M_S {
            still_max_age_s.max(0.0) + MAX_MOVING_GAP_S
        } else {
            MAX_MOVING_GAP_S
        }
    }

    /// How well a track first seen at `ground_m` at time `t_s` continues this one: None when it
    /// cannot be the same vehicle, else a cost (m; lower is likelier).
    pub(crate) fn cost(&self, t_s: f64, ground_m: [f64; 2], still_max_age_s: f64) -> Option<f64> {
        let dt = t_s - self.t_s;
        if !(dt > 0.0 && dt <= self.max_gap_s(still_max_age_s)) {
            return None;
        }
        let d = [
            ground_m[0] - self.ground_m[0],
            ground_m[1] - self.ground_m[1],
        ];
        let mut along = d[0] * self.dir[0] + d[1] * self.dir[1];
        let across = (d[0] * self.dir[1] - d[1] * self.dir[0]).abs();
        if !self.directed {
            along = along.abs();
        }
        let expected_m = self.speed_m_s * dt;
        let reach_m =
            expected_m + (0.5 * ACCEL_REACH_M_S2 * dt * dt).min(ACCEL_REACH_CAP_M) + ALONG_SLACK_M;
        // Braking to a stop covers v² / 2a at least.
        let brake_t_s = dt.min(self.speed_m_s / BRAKE_REACH_M_S2);
        let least_m = self.speed_m_s * brake_t_s - 0.5 * BRAKE_REACH_M_S2 * brake_t_s * brake_t_s;
        if across > LATERAL_GATE_M || along < least_m - ALONG_SLACK_M || along > reach_m {
            return None;
        }
        Some((along - expected_m).abs() + 2.0 * across)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moving(speed_m_s: f64) -> Tail {
        let points: Vec<(f64, [f64; 2])> = (0..=20)
            .map(|i| {
                let t = f64::from(i) * 0.1;
                (t, [speed_m_s * t, 0.0])
            })
            .collect();
        Tail::of(&points, [1.0, 0.0]).unwrap()
    }

    #[test]
    fn the_tail_has_the_tracks_direction_and_final_speed() {
        let tail = moving(10.0);
        assert!(tail.directed);
        assert!((tail.dir[0] - 1.0).abs() < 1e-9);
        assert!((tail.speed_m_s - 10.0).abs() < 1e-9);
        assert_eq!(tail.t_s, 2.0);
        // Braking to a stop: the final speed is the last second's.
        let points: Vec<(f64, [f64; 2])> = (0..=40)
            .map(|i| {
                let t = f64::from(i) * 0.1;
                let x = if t < 2.0 { 5.0 * t - 1.25 * t * t } else { 5.0 };
                (t, [0.0, x])
            })
            .collect();
        let tail = Tail::of(&points, [1.0, 0.0]).unwrap();
        assert!((tail.dir[1] - 1.0).abs() < 1e-9);
        assert!(tail.speed_m_s < 1e-9, "{}", tail.speed_m_s);
    }

    #[test]
    fn a_track_ahead_in_lane_continues_a_moving_one() {
        let tail = moving(10.0);
        // 0.5 s later, 5 m further on: where it was heading.
        let c = tail.cost(2.5, [25.0, 0.3], 10.0).unwrap();
        assert!(c < 1.0, "{c}");
        // Further than it could have got, or behind it (the vehicle following), or in the next
        // lane, or too late: no.
        assert_eq!(tail.cost(2.5, [45.0, 0.0], 10.0), None);
        // Closer than even hard braking would have kept it: another vehicle.
        assert!(tail.cost(3.5, [31.0, 0.0], 10.0).is_some());
        assert_eq!(tail.cost(3.5, [25.0, 0.0], 10.0), None);
        assert_eq!(tail.cost(2.5, [14.0, 0.0], 10.0), None);
        assert_eq!(tail.cost(2.5, [25.0, 3.5], 10.0), None);
        assert_eq!(
            tail.cost(2.0 + MAX_MOVING_GAP_S + 0.1, [50.0, 0.0], 10.0),
            None
        );
        // Earlier than the lost track's last sample: another vehicle.
        assert_eq!(tail.cost(1.9, [20.0, 0.0], 10.0), None);
    }

    #[test]
    fn a_vehicle_that_stood_still_may_be_picked_up_after_the_trackers_patience() {
        let points: Vec<(f64, [f64; 2])> = (0..=30)
            .map(|i| {
                let t = f64::from(i) * 0.1;
                (t, [(8.0 * t).min(16.0), 0.0])
            })
            .collect();
        let tail = Tail::of(&points, [1.0, 0.0]).unwrap();
        assert!(tail.speed_m_s < STILL_M_S);
        // Nine seconds later, moved off by 4 m.
        assert!(tail.cost(12.0, [20.0, 0.2], 10.0).is_some());
        // Not after the still tracks' patience, and not far beyond the acceleration reach.
        assert_eq!(
            tail.cost(3.0 + 10.0 + MAX_MOVING_GAP_S + 0.5, [17.0, 0.0], 10.0),
            None
        );
        assert_eq!(tail.cost(12.0, [16.0 + 12.0 + 2.5, 0.0], 10.0), None);
    }

    #[test]
    fn a_track_too_short_for_a_direction_accepts_either_way_along_the_zone() {
        let points = [(0.0, [0.0, 0.0]), (0.5, [0.3, 0.0])];
        let tail = Tail::of(&points, [0.0, 1.0]).unwrap();
        assert!(!tail.directed);
        assert_eq!(tail.speed_m_s, 0.0);
        assert!(tail.cost(1.0, [0.3, 1.0], 10.0).is_some());
        assert!(tail.cost(1.0, [0.3, -1.0], 10.0).is_some());
        assert_eq!(tail.cost(1.0, [2.3, 0.0], 10.0), None);
    }
}
