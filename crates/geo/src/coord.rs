//! Coordinate systems used in China and conversion between them.
//!
//! citygrid stores every position in WGS-84 (the official CGCS2000 is within centimetres of it,
//! so we treat the two as one). Consumer maps in China do not: AMap and Tencent use GCJ-02
//! (国测局坐标, the "Mars" offset every map published in China must apply) and Baidu uses BD-09,
//! a further offset of GCJ-02. Positions arriving from a phone or a web map therefore have to be
//! converted at the edge with [`to_wgs84`], and converted back with [`from_wgs84`] before they are
//! drawn on such a map.
//!
//! GCJ-02 is the widely published reverse-engineered algorithm (Krasovsky ellipsoid); it is only
//! applied inside a rough bounding box of China and is the identity outside it. Its inverse has
//! no closed form, so we iterate the forward transform to a fixed point (a one-step inverse is
//! off by up to a couple of metres, too much for deciding which unit grid a report falls in).
//! Outside China every system here is treated as plain WGS-84.

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// A geographic coordinate system a longitude/latitude pair may be expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum CoordSys {
    /// WGS-84, what GPS/BeiDou receivers and our storage use.
    #[default]
    Wgs84,
    /// GCJ-02 (国测局坐标, "Mars coordinates"): AMap (高德), Tencent maps, most Chinese apps.
    Gcj02,
    /// BD-09 (百度坐标): Baidu maps.
    Bd09,
    /// CGCS2000 (2000国家大地坐标系), the official national datum; treated as WGS-84.
    Cgcs2000,
}

impl CoordSys {
    /// Every system, in a stable order (for documentation, forms and tests).
    pub const ALL: [CoordSys; 4] = [CoordSys::Wgs84, CoordSys::Gcj02, CoordSys::Bd09, CoordSys::Cgcs2000];

    /// The serialised name: `wgs84`, `gcj02`, `bd09` or `cgcs2000`.
    pub fn as_str(self) -> &'static str {
        match self {
            CoordSys::Wgs84 => "wgs84",
            CoordSys::Gcj02 => "gcj02",
            CoordSys::Bd09 => "bd09",
            CoordSys::Cgcs2000 => "cgcs2000",
        }
    }

    /// Parses a system name, ignoring ASCII case. Besides the serialised names it takes the
    /// spellings clients actually send (`WGS-84`, `GCJ-02`, `BD-09`, `gcj02ll`, `bd09ll`) and
    /// the EPSG codes of the two datums (`EPSG:4326`, `EPSG:4490`), so an API parameter does not
    /// reject a perfectly clear request.
    pub fn parse(s: &str) -> Option<Self> {
        const ALIASES: [(&str, CoordSys); 13] = [
            ("wgs84", CoordSys::Wgs84),
            ("wgs-84", CoordSys::Wgs84),
            ("epsg:4326", CoordSys::Wgs84),
            ("gps", CoordSys::Wgs84),
            ("gcj02", CoordSys::Gcj02),
            ("gcj-02", CoordSys::Gcj02),
            ("gcj02ll", CoordSys::Gcj02),
            ("bd09", CoordSys::Bd09),
            ("bd-09", CoordSys::Bd09),
            ("bd09ll", CoordSys::Bd09),
            ("cgcs2000", CoordSys::Cgcs2000),
            ("cgcs-2000", CoordSys::Cgcs2000),
            ("epsg:4490", CoordSys::Cgcs2000),
        ];
        let s = s.trim();
        ALIASES.iter().find(|(name, _)| name.eq_ignore_ascii_case(s)).map(|&(_, sys)| sys)
    }
}

impl fmt::Display for CoordSys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown coordinate system name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown coordinate system {0:?} (expected wgs84, gcj02, bd09 or cgcs2000)")]
pub struct UnknownCoordSys(pub String);

impl FromStr for CoordSys {
    type Err = UnknownCoordSys;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CoordSys::parse(s).ok_or_else(|| UnknownCoordSys(s.to_owned()))
    }
}

/// Converts `(lon, lat)` in `sys` to WGS-84. Non-finite input and points outside China's
/// bounding box are returned unchanged.
pub fn to_wgs84(sys: CoordSys, lon: f64, lat: f64) -> (f64, f64) {
    if !lon.is_finite() || !lat.is_finite() || out_of_china(lon, lat) {
        return (lon, lat);
    }
    match sys {
        CoordSys::Wgs84 | CoordSys::Cgcs2000 => (lon, lat),
        CoordSys::Gcj02 => gcj02_to_wgs84(lon, lat),
        CoordSys::Bd09 => {
            let (glon, glat) = bd09_to_gcj02(lon, lat);
            gcj02_to_wgs84(glon, glat)
        }
    }
}

/// Converts WGS-84 `(lon, lat)` to `sys`. Non-finite input and points outside China's bounding
/// box are returned unchanged.
pub fn from_wgs84(sys: CoordSys, lon: f64, lat: f64) -> (f64, f64) {
    if !lon.is_finite() || !lat.is_finite() || out_of_china(lon, lat) {
        return (lon, lat);
    }
    match sys {
        CoordSys::Wgs84 | CoordSys::Cgcs2000 => (lon, lat),
        CoordSys::Gcj02 => wgs84_to_gcj02(lon, lat),
        CoordSys::Bd09 => {
            let (glon, glat) = wgs84_to_gcj02(lon, lat);
            gcj02_to_bd09(glon, glat)
        }
    }
}

/// True outside the rough bounding box of China in which GCJ-02 applies. This box is part of
/// the published algorithm (the maps outside it are not offset), so it must not be "improved".
pub fn out_of_china(lon: f64, lat: f64) -> bool {
    !((72.004..=137.8347).contains(&lon) && (0.8293..=55.8271).contains(&lat))
}

/// Semi-major axis of the Krasovsky 1940 ellipsoid, which GCJ-02 is defined on.
const KRASOVSKY_A: f64 = 6_378_245.0;
/// First eccentricity squared of the Krasovsky ellipsoid (published as 0.00669342162296594323;
/// the last two digits are below f64 precision).
const KRASOVSKY_EE: f64 = 0.006_693_421_622_965_943;
/// The constant of the BD-09 offset.
const X_PI: f64 = PI * 3000.0 / 180.0;

/// Iterations stop when the forward transform of the estimate matches within this many degrees
/// (about 0.1 mm), far below the 0.5 m we promise.
const INVERSE_TOLERANCE_DEG: f64 = 1e-9;
/// The offset's derivative is tiny, so the fixed point converges in 2–4 steps; the cap only
/// guards against a pathological input looping forever.
const INVERSE_MAX_ITERATIONS: usize = 30;

fn transform_lat(x: f64, y: f64) -> f64 {
    let mut ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    ret
}

fn transform_lon(x: f64, y: f64) -> f64 {
    let mut ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    ret += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    ret += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    ret += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    ret
}

/// The GCJ-02 offset (in degrees) to add to a WGS-84 point.
fn gcj02_delta(lon: f64, lat: f64) -> (f64, f64) {
    let dlat = transform_lat(lon - 105.0, lat - 35.0);
    let dlon = transform_lon(lon - 105.0, lat - 35.0);
    let rad_lat = lat / 180.0 * PI;
    let magic = 1.0 - KRASOVSKY_EE * rad_lat.sin() * rad_lat.sin();
    let sqrt_magic = magic.sqrt();
    let dlat = (dlat * 180.0) / ((KRASOVSKY_A * (1.0 - KRASOVSKY_EE)) / (magic * sqrt_magic) * PI);
    let dlon = (dlon * 180.0) / (KRASOVSKY_A / sqrt_magic * rad_lat.cos() * PI);
    (dlon, dlat)
}

/// WGS-84 → GCJ-02; the identity outside China.
pub fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if out_of_china(lon, lat) {
        return (lon, lat);
    }
    let (dlon, dlat) = gcj02_delta(lon, lat);
    (lon + dlon, lat + dlat)
}

/// GCJ-02 → WGS-84 by fixed-point iteration of [`wgs84_to_gcj02`]; the identity outside China.
pub fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if out_of_china(lon, lat) {
        return (lon, lat);
    }
    // The one-step approximation (subtract the offset computed at the GCJ point) is the start.
    let (dlon, dlat) = gcj02_delta(lon, lat);
    invert(wgs84_to_gcj02, (lon, lat), (lon - dlon, lat - dlat))
}

/// GCJ-02 → BD-09 (Baidu's published formula).
pub fn gcj02_to_bd09(lon: f64, lat: f64) -> (f64, f64) {
    let z = (lon * lon + lat * lat).sqrt() + 0.000_02 * (lat * X_PI).sin();
    let theta = lat.atan2(lon) + 0.000_003 * (lon * X_PI).cos();
    (z * theta.cos() + 0.0065, z * theta.sin() + 0.006)
}

/// BD-09 → GCJ-02: the usual closed-form approximation, refined by iterating [`gcj02_to_bd09`]
/// (the closed form alone is off by up to about a metre).
pub fn bd09_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    let x = lon - 0.0065;
    let y = lat - 0.006;
    let z = (x * x + y * y).sqrt() - 0.000_02 * (y * X_PI).sin();
    let theta = y.atan2(x) - 0.000_003 * (x * X_PI).cos();
    invert(gcj02_to_bd09, (lon, lat), (z * theta.cos(), z * theta.sin()))
}

/// Solves `forward(p) = target` starting at `guess`, by moving the estimate by the residual
/// until it vanishes. This converges because both offsets change by far less than the distance
/// moved (their Jacobian is the identity plus terms of order 1e-3).
fn invert(forward: impl Fn(f64, f64) -> (f64, f64), target: (f64, f64), guess: (f64, f64)) -> (f64, f64) {
    let (mut lon, mut lat) = guess;
    for _ in 0..INVERSE_MAX_ITERATIONS {
        let (flon, flat) = forward(lon, lat);
        let (elon, elat) = (target.0 - flon, target.1 - flat);
        if elon.abs() < INVERSE_TOLERANCE_DEG && elat.abs() < INVERSE_TOLERANCE_DEG {
            break;
        }
        lon += elon;
        lat += elat;
    }
    (lon, lat)
}

/// Great-circle distance in metres between two WGS-84 points (haversine on a 6,371 km sphere):
/// good enough for tolerances and "how far is the inspector" questions, not for surveying.
pub fn distance_m(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    const EARTH_RADIUS_M: f64 = 6_371_008.8;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn assert_close(got: (f64, f64), want: (f64, f64), tol_deg: f64) {
        assert!(
            (got.0 - want.0).abs() <= tol_deg && (got.1 - want.1).abs() <= tol_deg,
            "got {got:?}, want {want:?} (tolerance {tol_deg}°)"
        );
    }

    // Reference values published in the README/test of wandergis/coordtransform (the widely
    // used JavaScript implementation of the same public algorithm), for Tian'anmen
    // (116.404, 39.915).
    #[test]
    fn wgs84_to_gcj02_matches_published_reference() {
        assert_close(wgs84_to_gcj02(116.404, 39.915), (116.410_244_499_169_38, 39.916_404_281_501_64), 1e-12);
        assert_close(
            from_wgs84(CoordSys::Gcj02, 116.404, 39.915),
            (116.410_244_499_169_38, 39.916_404_281_501_64),
            1e-12,
        );
    }

    #[test]
    fn gcj02_to_bd09_matches_published_reference() {
        assert_close(gcj02_to_bd09(116.404, 39.915), (116.410_369_493_710_29, 39.921_336_993_510_21), 1e-12);
        // hujiulong/gcoord test/unit/crs/GCJ02.spec.js: GCJ02 → BD09 of (123, 45).
        assert_close(gcj02_to_bd09(123.0, 45.0), (123.006_364_99, 45.006_368_99), 5e-6);
    }

    // coordtransform publishes one-step inverses; ours is iterative, so it agrees with theirs to
    // within their own error (about a metre) and is exact against the forward transform.
    #[test]
    fn gcj02_to_wgs84_inverts_the_published_forward() {
        let wgs = gcj02_to_wgs84(116.410_244_499_169_38, 39.916_404_281_501_64);
        assert!(distance_m(wgs.0, wgs.1, 116.404, 39.915) < 0.01, "{wgs:?}");

        let one_step = (116.397_755_500_830_61, 39.913_595_718_498_36);
        let ours = gcj02_to_wgs84(116.404, 39.915);
        assert!(distance_m(ours.0, ours.1, one_step.0, one_step.1) < 2.0);
        assert_close(wgs84_to_gcj02(ours.0, ours.1), (116.404, 39.915), 1e-8);

        // hujiulong/gcoord (iterative, tolerance 1e-6°): GCJ02 → WGS84 of (123, 45).
        assert_close(gcj02_to_wgs84(123.0, 45.0), (122.993_955_97, 44.998_040_71), 5e-6);
    }

    #[test]
    fn bd09_to_gcj02_inverts_the_published_forward() {
        let one_step = (116.397_627_291_193_15, 39.908_656_739_576_31);
        let ours = bd09_to_gcj02(116.404, 39.915);
        assert!(distance_m(ours.0, ours.1, one_step.0, one_step.1) < 2.0);
        assert_close(gcj02_to_bd09(ours.0, ours.1), (116.404, 39.915), 1e-8);
    }

    // The GCJ-02 offset is a few hundred metres everywhere in China and BD-09 adds roughly
    // another kilometre; a unit-conversion slip (radians, swapped axes) would break either bound.
    #[test]
    fn offset_in_xuzhou_is_a_few_hundred_metres() {
        let (lon, lat) = (117.184, 34.262);
        let (glon, glat) = from_wgs84(CoordSys::Gcj02, lon, lat);
        let d = distance_m(lon, lat, glon, glat);
        assert!((100.0..1000.0).contains(&d), "offset {d} m");
        let (blon, blat) = from_wgs84(CoordSys::Bd09, lon, lat);
        assert!(distance_m(glon, glat, blon, blat) > 500.0);
    }

    #[test]
    fn outside_china_is_passed_through() {
        for (lon, lat) in [(2.3522, 48.8566), (-74.006, 40.7128), (139.6917, 35.6895), (151.2, -33.9)] {
            for sys in CoordSys::ALL {
                assert_eq!(to_wgs84(sys, lon, lat), (lon, lat), "{sys}");
                assert_eq!(from_wgs84(sys, lon, lat), (lon, lat), "{sys}");
            }
            assert_eq!(wgs84_to_gcj02(lon, lat), (lon, lat));
            assert_eq!(gcj02_to_wgs84(lon, lat), (lon, lat));
        }
    }

    #[test]
    fn non_finite_is_passed_through() {
        for sys in CoordSys::ALL {
            let (lon, lat) = to_wgs84(sys, f64::NAN, 34.0);
            assert!(lon.is_nan() && lat == 34.0);
            assert_eq!(from_wgs84(sys, 117.0, f64::INFINITY), (117.0, f64::INFINITY));
        }
    }

    #[test]
    fn cgcs2000_and_wgs84_are_identity() {
        for sys in [CoordSys::Wgs84, CoordSys::Cgcs2000] {
            assert_eq!(to_wgs84(sys, 117.18, 34.26), (117.18, 34.26));
            assert_eq!(from_wgs84(sys, 117.18, 34.26), (117.18, 34.26));
        }
    }

    #[test]
    fn names_parse_and_serialise() {
        for sys in CoordSys::ALL {
            assert_eq!(CoordSys::parse(sys.as_str()), Some(sys));
            assert_eq!(sys.as_str().parse::<CoordSys>(), Ok(sys));
            let json = serde_json::to_string(&sys).unwrap();
            assert_eq!(json, format!("\"{}\"", sys.as_str()));
            assert_eq!(serde_json::from_str::<CoordSys>(&json).unwrap(), sys);
        }
        assert_eq!(CoordSys::parse(" GCJ-02 "), Some(CoordSys::Gcj02));
        assert_eq!(CoordSys::parse("BD09LL"), Some(CoordSys::Bd09));
        assert_eq!(CoordSys::parse("EPSG:4490"), Some(CoordSys::Cgcs2000));
        assert_eq!(CoordSys::parse("mercator"), None);
        assert!("".parse::<CoordSys>().is_err());
        assert_eq!(CoordSys::default(), CoordSys::Wgs84);
    }

    #[test]
    fn distance_is_sane() {
        // One degree of latitude is about 111.2 km.
        let d = distance_m(117.0, 34.0, 117.0, 35.0);
        assert!((d - 111_195.0).abs() < 100.0, "{d}");
        assert_eq!(distance_m(117.0, 34.0, 117.0, 34.0), 0.0);
    }

    proptest! {
        // Round trips over mainland China (Xinjiang to Heilongjiang, Hainan to Mohe), away from
        // the edge of the bounding box where the passthrough makes the transform discontinuous.
        #[test]
        fn gcj02_round_trip_under_half_a_metre(lon in 73.5f64..135.0, lat in 18.0f64..53.5) {
            let (glon, glat) = from_wgs84(CoordSys::Gcj02, lon, lat);
            let (wlon, wlat) = to_wgs84(CoordSys::Gcj02, glon, glat);
            prop_assert!(distance_m(lon, lat, wlon, wlat) < 0.5);
            // And the other way round: a GCJ-02 point from a phone comes back to itself.
            let (wlon, wlat) = to_wgs84(CoordSys::Gcj02, lon, lat);
            let (glon, glat) = from_wgs84(CoordSys::Gcj02, wlon, wlat);
            prop_assert!(distance_m(lon, lat, glon, glat) < 0.5);
        }

        #[test]
        fn bd09_round_trip_under_half_a_metre(lon in 73.5f64..135.0, lat in 18.0f64..53.5) {
            let (blon, blat) = from_wgs84(CoordSys::Bd09, lon, lat);
            let (wlon, wlat) = to_wgs84(CoordSys::Bd09, blon, blat);
            prop_assert!(distance_m(lon, lat, wlon, wlat) < 0.5);
            let (wlon, wlat) = to_wgs84(CoordSys::Bd09, lon, lat);
            let (blon, blat) = from_wgs84(CoordSys::Bd09, wlon, wlat);
            prop_assert!(distance_m(lon, lat, blon, blat) < 0.5);
        }
    }

    /// The brief asks for a grid of points over China, not only random ones: a 0.5° lattice
    /// covers every kind of terrain the sinusoidal terms of the offset produce.
    #[test]
    fn round_trip_on_a_lattice_over_china() {
        let mut worst: f64 = 0.0;
        for i in 0..=123 {
            for j in 0..=71 {
                let (lon, lat) = (73.5 + 0.5 * f64::from(i), 18.0 + 0.5 * f64::from(j));
                for sys in [CoordSys::Gcj02, CoordSys::Bd09] {
                    let (x, y) = from_wgs84(sys, lon, lat);
                    let (wlon, wlat) = to_wgs84(sys, x, y);
                    worst = worst.max(distance_m(lon, lat, wlon, wlat));
                }
            }
        }
        assert!(worst < 0.01, "worst round trip error {worst} m");
    }
}
