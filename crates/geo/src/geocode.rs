//! The address database (地址库) and geocoding (地理编码, GB/T 30428.3): free text → position
//! (forward) and position → nearest door, POI or road (reverse).
//!
//! Reports arrive from the 12345 hotline and from citizens as text ("淮海东路18号门口井盖坏了"),
//! and case lists show positions as "near X road". People write addresses every way: with or
//! without province, city and district, full-width digits from a Chinese input method
//! (`１８号`), spaces, old road names, short POI names. [`AddressBook`] therefore normalises the
//! query ([`normalize`]), strips the administrative prefix (noting the district it names), finds
//! the longest known road name in what is left and parses the door number (门牌号) after it;
//! POI names and aliases are looked up whole. Everything is a `HashMap` lookup on normalised
//! names, plus a scan of the query's substrings bounded by the longest road name (the query is
//! a few dozen characters), so one lookup costs microseconds.
//!
//! Performance target (not asserted in tests): ≥ 20,000 forward geocodes per second on one core
//! over 200,000 addresses, release build.
//!
//! Confidence of a hit, 0..=1: 1.0 an exact door or POI; 0.9 through an alias or a differently
//! written number (`18`, `十八号`); 0.7 down to 0.6 the nearest existing door when the asked
//! number does not exist; 0.6 the road when only the road could be matched; 0.3 only the
//! district. A district named in the query that contradicts the match multiplies by 0.7.

use crate::area::radius_bbox;
use crate::coord::distance_m;
use crate::layers::{Address, AddressKind, Road};
use citygrid_core::codes::RegionCode;
use geo::{Centroid, InteriorPoint};
use rstar::primitives::{GeomWithData, Line};
use rstar::{RTree, AABB};
use std::collections::HashMap;

/// How precisely a hit matches the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchLevel {
    /// A door or building number (门楼牌).
    Door,
    /// A point of interest (兴趣点).
    Poi,
    /// A road, street or lane (街巷): the number was missing or unknown.
    Road,
    /// Only the district was recognised.
    District,
}

/// One answer of the forward geocoder.
///
/// `address` is owned (cloned from the book) so a hit can outlive the book's lock in the server
/// and so road- and district-level hits can carry a stand-in: a road with no road row in the
/// address table is answered with an address built from its centre line (code, name, aliases,
/// district of the road; a point on the line), and a district-level hit with an address whose
/// code is the district code, whose name is the district name, whose kind is `Poi` and whose
/// position is the mean of the district's addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct GeocodeHit {
    pub address: Address,
    pub lon: f64,
    pub lat: f64,
    /// 0..=1, see the module documentation.
    pub confidence: f64,
    pub level: MatchLevel,
}

/// Normalises text for matching: full-width ASCII forms (`ＡＢＣ１２３，`) and the ideographic
/// space become half-width, whitespace and list punctuation (`,，、;；。`) are removed, `號` is
/// read as `号`.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            '號' => '号',
            '—' | '–' => '-',
            _ => c,
        };
        if c.is_whitespace() || matches!(c, ',' | '，' | '、' | ';' | '；' | '。') {
            continue;
        }
        out.push(c);
    }
    out
}

/// A door number read from text: `18号` → (18, None), `18-2号` → (18, Some(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DoorNumber {
    main: u32,
    sub: Option<u32>,
}

/// Parses the door number at the start of `s` (normalised). Returns the number, whether it was
/// written in the canonical way (`18号`, `18-2号`) and whether text follows it.
fn parse_number(s: &str) -> Option<(DoorNumber, bool, bool)> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut canonical = true;
    let read = |i: &mut usize, canonical: &mut bool| -> Option<u32> {
        let start = *i;
        if chars.get(*i).is_some_and(|c| c.is_ascii_digit()) {
            let mut v: u32 = 0;
            while let Some(d) = chars.get(*i).and_then(|c| c.to_digit(10)) {
                v = v.checked_mul(10)?.checked_add(d)?;
                *i += 1;
            }
            return Some(v);
        }
        while chars.get(*i).is_some_and(|&c| chinese_digit(c).is_some() || matches!(c, '十' | '百' | '千')) {
            *i += 1;
        }
        if *i == start {
            return None;
        }
        *canonical = false;
        chinese_number(&chars[start..*i])
    };
    let main = read(&mut i, &mut canonical)?;
    let mut sub = None;
    if matches!(chars.get(i), Some('-' | '之')) {
        let mut j = i + 1;
        if let Some(v) = read(&mut j, &mut canonical) {
            if chars[i] == '之' {
                canonical = false;
            }
            sub = Some(v);
            i = j;
        }
    }
    if chars.get(i) == Some(&'号') {
        i += 1;
    } else {
        canonical = false;
    }
    Some((DoorNumber { main, sub }, canonical, i < chars.len()))
}

fn chinese_digit(c: char) -> Option<u32> {
    Some(match c {
        '零' | '〇' => 0,
        '一' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

/// `十八` → 18, `一百零五` → 105, `二十` → 20, and digit by digit `一八` → 18.
fn chinese_number(chars: &[char]) -> Option<u32> {
    if chars.iter().all(|&c| chinese_digit(c).is_some()) {
        return chars.iter().try_fold(0u32, |v, &c| v.checked_mul(10)?.checked_add(chinese_digit(c)?));
    }
    let (mut total, mut current) = (0u32, 0u32);
    for &c in chars {
        match c {
            '十' => {
                total += current.max(1) * 10;
                current = 0;
            }
            '百' => {
                total += current * 100;
                current = 0;
            }
            '千' => {
                total += current * 1000;
                current = 0;
            }
            _ => current = chinese_digit(c)?,
        }
    }
    Some(total + current)
}

/// One road of the book: a road name in one district (the key it is built under), with its doors.
#[derive(Debug, Clone)]
struct RoadEntry {
    /// The address that stands for the road itself: a `Road` row of the address table, or one
    /// built from the centre line.
    representative: Option<Address>,
    /// Door addresses by number.
    doors: HashMap<DoorNumber, usize>,
    /// (main number, address) sorted, for "the nearest existing number".
    numbers: Vec<(u32, usize)>,
}

/// A district the book knows by name: (normalised name, code, name as given, mean position of
/// its addresses).
type District = (String, RegionCode, String, Option<(f64, f64)>);

/// Entries a name leads to: (index, reached through an alias).
type Matches<'a> = &'a [(usize, bool)];

/// The address database, indexed for forward and reverse geocoding. Immutable once built.
#[derive(Debug, Clone)]
pub struct AddressBook {
    /// Sorted by code.
    addresses: Vec<Address>,
    roads: Vec<Road>,
    road_entries: Vec<RoadEntry>,
    /// Normalised road name or alias → (entry, reached through an alias).
    road_names: HashMap<String, Vec<(usize, bool)>>,
    /// Longest road name or alias, in chars: bounds the substring scan.
    max_road_chars: usize,
    /// Normalised POI name or alias → (address, reached through an alias).
    pois: HashMap<String, Vec<(usize, bool)>>,
    /// Normalised district name → (code, name as given, mean position of its addresses).
    districts: Vec<District>,
    /// Door and POI positions, longitude scaled by `scale` (see `KioskIndex` for why).
    points: RTree<GeomWithData<[f64; 2], usize>>,
    /// Road segments in the same scaled plane, with the road's index.
    segments: RTree<GeomWithData<Line<[f64; 2]>, usize>>,
    scale: f64,
}

impl AddressBook {
    /// Builds the book. Addresses with a non-finite position are kept for forward lookups but
    /// left out of the reverse index; nothing is refused (an address table is messy and a partly
    /// usable geocoder beats none).
    pub fn new(mut addresses: Vec<Address>, roads: Vec<Road>, districts: Vec<(RegionCode, String)>) -> AddressBook {
        addresses.sort_by(|a, b| a.code.cmp(&b.code));
        let finite = |lon: f64, lat: f64| lon.is_finite() && lat.is_finite();
        let lats: Vec<f64> = addresses.iter().filter(|a| finite(a.lon, a.lat)).map(|a| a.lat).collect();
        let mean_lat = if lats.is_empty() { 0.0 } else { lats.iter().sum::<f64>() / lats.len() as f64 };
        let scale = mean_lat.to_radians().cos().max(0.01);

        let mut book = AddressBook {
            addresses: Vec::new(),
            roads: Vec::new(),
            road_entries: Vec::new(),
            road_names: HashMap::new(),
            max_road_chars: 0,
            pois: HashMap::new(),
            districts: Vec::new(),
            points: RTree::new(),
            segments: RTree::new(),
            scale,
        };
        // (normalised canonical name, district) → entry
        let mut entry_of: HashMap<(String, Option<RegionCode>), usize> = HashMap::new();
        let mut entry = |book: &mut AddressBook, name: &str, district: Option<&RegionCode>| -> usize {
            let key = (normalize(name), district.cloned());
            *entry_of.entry(key).or_insert_with(|| {
                book.road_entries.push(RoadEntry { representative: None, doors: HashMap::new(), numbers: Vec::new() });
                book.road_entries.len() - 1
            })
        };

        for road in &roads {
            let e = entry(&mut book, &road.name, Some(&road.district));
            book.add_road_name(&road.name, e, false);
            for alias in &road.aliases {
                book.add_road_name(alias, e, true);
            }
            if book.road_entries[e].representative.is_none() {
                book.road_entries[e].representative = road_stand_in(road);
            }
        }
        for (ai, a) in addresses.iter().enumerate() {
            match a.kind {
                AddressKind::Road => {
                    let e = entry(&mut book, &a.name, Some(&a.district));
                    book.add_road_name(&a.name, e, false);
                    for alias in &a.aliases {
                        book.add_road_name(alias, e, true);
                    }
                    // A row of the address table beats a stand-in built from the line.
                    book.road_entries[e].representative = Some(a.clone());
                }
                AddressKind::Door => {
                    let road_name = a.road.clone().or_else(|| {
                        // No road column: the road is the name up to its number.
                        let n = normalize(&a.name);
                        let cut = n.find(|c: char| c.is_ascii_digit())?;
                        Some(n[..cut].to_owned())
                    });
                    let Some(road_name) = road_name else { continue };
                    let e = entry(&mut book, &road_name, Some(&a.district));
                    book.add_road_name(&road_name, e, false);
                    let number_text = a.number.clone().unwrap_or_else(|| {
                        let n = normalize(&a.name);
                        n.strip_prefix(&normalize(&road_name)).unwrap_or_default().to_owned()
                    });
                    if let Some((number, _, _)) = parse_number(&normalize(&number_text)) {
                        let road = &mut book.road_entries[e];
                        // Duplicate numbers: the first by code is kept, deterministically.
                        road.doors.entry(number).or_insert(ai);
                        road.numbers.push((number.main, ai));
                    }
                    // Aliases of a door (a building's name) are looked up like POI names.
                    for alias in &a.aliases {
                        book.pois.entry(normalize(alias)).or_default().push((ai, true));
                    }
                }
                AddressKind::Poi => {
                    book.pois.entry(normalize(&a.name)).or_default().push((ai, false));
                    for alias in &a.aliases {
                        book.pois.entry(normalize(alias)).or_default().push((ai, true));
                    }
                }
            }
        }
        for road in &mut book.road_entries {
            road.numbers.sort_unstable();
        }
        for list in book.road_names.values_mut().chain(book.pois.values_mut()) {
            // Canonical names before aliases, then by index: the order lookups prefer.
            list.sort_unstable_by_key(|&(i, alias)| (alias, i));
            list.dedup_by_key(|&mut (i, _)| i);
        }

        for (code, name) in districts {
            let inside: Vec<&Address> =
                addresses.iter().filter(|a| code.contains(&a.district) && finite(a.lon, a.lat)).collect();
            let mean = (!inside.is_empty()).then(|| {
                let n = inside.len() as f64;
                (inside.iter().map(|a| a.lon).sum::<f64>() / n, inside.iter().map(|a| a.lat).sum::<f64>() / n)
            });
            book.districts.push((normalize(&name), code, name, mean));
        }
        // Longest names first, so "泉山区" is not mistaken for a shorter name it contains.
        book.districts.sort_by(|a, b| b.0.chars().count().cmp(&a.0.chars().count()).then(a.1.cmp(&b.1)));

        let point_entries = addresses
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a.kind, AddressKind::Door | AddressKind::Poi) && finite(a.lon, a.lat))
            .map(|(i, a)| GeomWithData::new([a.lon * scale, a.lat], i))
            .collect();
        let mut segment_entries = Vec::new();
        for (ri, road) in roads.iter().enumerate() {
            for line in road.line.0.iter() {
                for seg in line.lines() {
                    if [seg.start.x, seg.start.y, seg.end.x, seg.end.y].iter().all(|v| v.is_finite()) {
                        let (a, b) = ([seg.start.x * scale, seg.start.y], [seg.end.x * scale, seg.end.y]);
                        segment_entries.push(GeomWithData::new(Line::new(a, b), ri));
                    }
                }
            }
        }
        book.points = RTree::bulk_load(point_entries);
        book.segments = RTree::bulk_load(segment_entries);
        book.addresses = addresses;
        book.roads = roads;
        book
    }

    fn add_road_name(&mut self, name: &str, entry: usize, alias: bool) {
        let n = normalize(name);
        if n.is_empty() {
            return;
        }
        self.max_road_chars = self.max_road_chars.max(n.chars().count());
        self.road_names.entry(n).or_default().push((entry, alias));
    }

    /// Number of addresses (doors, POIs and road rows).
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// All addresses, sorted by code.
    pub fn addresses(&self) -> &[Address] {
        &self.addresses
    }

    /// The best match for `query`, or `None` when nothing in it is known.
    pub fn geocode(&self, query: &str) -> Option<GeocodeHit> {
        let mut hits = self.candidates(query, false);
        pick_best(&mut hits);
        hits.into_iter().next()
    }

    /// Up to `limit` matches, best first (confidence, then address code). Besides what
    /// [`AddressBook::geocode`] considers, lists every road of an ambiguous name and, when the
    /// query is a fragment, roads and POIs whose name contains it (a linear scan: this is for
    /// a search box, not for bulk geocoding).
    pub fn search(&self, query: &str, limit: usize) -> Vec<GeocodeHit> {
        let mut hits = self.candidates(query, true);
        pick_best(&mut hits);
        let mut seen = std::collections::HashSet::new();
        hits.retain(|h| seen.insert(h.address.code.clone()));
        hits.truncate(limit);
        hits
    }

    /// All candidate hits for a query; `wide` adds the alternatives only `search` wants.
    fn candidates(&self, query: &str, wide: bool) -> Vec<GeocodeHit> {
        let q = normalize(query);
        if q.is_empty() {
            return Vec::new();
        }
        let (cores, district) = self.strip_admin(&q);
        let mut hits = Vec::new();

        // POIs are looked up whole, on the query as typed first: "徐州市第一中学" is a name
        // that starts with a city.
        for core in &cores {
            if let Some(list) = self.pois.get(*core) {
                for &(ai, alias) in list {
                    let a = &self.addresses[ai];
                    let level = if a.kind == AddressKind::Door { MatchLevel::Door } else { MatchLevel::Poi };
                    hits.push(self.hit(a.clone(), if alias { 0.9 } else { 1.0 }, level, district));
                }
                if !wide {
                    return hits;
                }
            }
        }

        // Roads: the longest known name at the start of what is left, else anywhere in it.
        let core = cores.last().copied().unwrap_or(q.as_str());
        if let Some((start, end, entries)) = self.find_road(core) {
            let rest = &core[end..];
            // Text before the road (a community, "在") costs a little.
            let penalty = if start == 0 { 1.0 } else { 0.9 };
            for &(e, alias) in entries {
                if let Some(hit) = self.road_hit(e, alias, rest, district, penalty) {
                    hits.push(hit);
                }
            }
            // Several roads of one name (in different districts): all are candidates; the
            // district mentioned, or the one with the asked door, wins in `pick_best`.
            if !wide && !hits.is_empty() {
                return hits;
            }
        }

        // POI names followed by more text ("徐州市第一中学门口").
        if hits.is_empty() || wide {
            if let Some((len, list)) = self.longest_prefix(core, &self.pois) {
                let penalty = if len == core.len() { 1.0 } else { 0.8 };
                for &(ai, alias) in list {
                    let a = &self.addresses[ai];
                    let level = if a.kind == AddressKind::Door { MatchLevel::Door } else { MatchLevel::Poi };
                    hits.push(self.hit(a.clone(), penalty * if alias { 0.9 } else { 1.0 }, level, district));
                }
            }
        }

        if wide && hits.len() < 16 && core.chars().count() >= 2 {
            self.fragment_hits(core, district, &mut hits);
        }

        if hits.is_empty() {
            if let Some(di) = district {
                let (_, code, name, mean) = &self.districts[di];
                if let Some((lon, lat)) = *mean {
                    let address = Address {
                        code: code.as_str().to_owned(),
                        kind: AddressKind::Poi,
                        name: name.clone(),
                        aliases: Vec::new(),
                        district: code.clone(),
                        road: None,
                        number: None,
                        lon,
                        lat,
                    };
                    hits.push(GeocodeHit { address, lon, lat, confidence: 0.3, level: MatchLevel::District });
                }
            }
        }
        hits
    }

    /// The hit for road entry `e` with `rest` the text after the road's name.
    fn road_hit(&self, e: usize, alias: bool, rest: &str, district: Option<usize>, penalty: f64) -> Option<GeocodeHit> {
        let road = &self.road_entries[e];
        let base = penalty * if alias { 0.9 } else { 1.0 };
        let at_road = |confidence: f64| {
            let address = road.representative.clone().or_else(|| {
                // No road row and no line: the first door stands for the road.
                road.numbers.first().map(|&(_, ai)| self.addresses[ai].clone())
            })?;
            Some(self.hit(address, confidence, MatchLevel::Road, district))
        };
        let Some((number, canonical, trailing)) = parse_number(rest) else {
            // Only the road was asked for (or the rest is no number): the road is the answer.
            let asked_road_only = rest.is_empty();
            return at_road(if asked_road_only { base } else { 0.6 * base });
        };
        let written = if canonical { 1.0 } else { 0.9 };
        let trailing = if trailing { 0.95 } else { 1.0 };
        if let Some(&ai) = road.doors.get(&number) {
            return Some(self.hit(self.addresses[ai].clone(), base * written * trailing, MatchLevel::Door, district));
        }
        // 18-5号 where only 18号 exists: the main building, nearly as good.
        if number.sub.is_some() {
            if let Some(&ai) = road.doors.get(&DoorNumber { main: number.main, sub: None }) {
                return Some(self.hit(self.addresses[ai].clone(), 0.8 * base * trailing, MatchLevel::Door, district));
            }
        }
        // The nearest existing number on the road, if it is close (numbers run along the road,
        // so a near number is a near door); otherwise the road itself.
        let i = road.numbers.partition_point(|&(n, _)| n < number.main);
        let near = [i.checked_sub(1), Some(i)]
            .into_iter()
            .flatten()
            .filter_map(|j| road.numbers.get(j))
            .min_by_key(|&&(n, ai)| (n.abs_diff(number.main), ai));
        match near {
            Some(&(n, ai)) if n.abs_diff(number.main) <= 20 => {
                let confidence = 0.7 - 0.005 * f64::from(n.abs_diff(number.main));
                Some(self.hit(self.addresses[ai].clone(), base * confidence, MatchLevel::Door, district))
            }
            _ => at_road(0.6 * base),
        }
    }

    fn hit(&self, address: Address, confidence: f64, level: MatchLevel, district: Option<usize>) -> GeocodeHit {
        // A district named in the query that is not the match's lowers trust in the match.
        let contradicts = district.is_some_and(|d| !self.districts[d].1.contains(&address.district));
        let confidence = (confidence * if contradicts { 0.7 } else { 1.0 }).clamp(0.0, 1.0);
        GeocodeHit { lon: address.lon, lat: address.lat, address, confidence, level }
    }

    /// Strips province, city and district from the front of a normalised query. Returns the
    /// successively stripped forms (the query itself first) and the district named, if any
    /// (an index into `districts`). A district named anywhere in the query counts.
    fn strip_admin<'q>(&self, q: &'q str) -> (Vec<&'q str>, Option<usize>) {
        let mut cores = vec![q];
        let mut rest = q;
        // "江苏省", "黑龙江省": the province is at most 4 characters before 省.
        if let Some(i) = rest.find('省') {
            if rest[..i].chars().count() <= 4 {
                rest = &rest[i + '省'.len_utf8()..];
                cores.push(rest);
            }
        }
        let mut district = None;
        for (di, (name, ..)) in self.districts.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            if let Some(i) = rest.find(name.as_str()) {
                district = Some(di);
                // Only a district at the front (after the city) is cut away; elsewhere it is
                // part of a longer name.
                let before = &rest[..i];
                if i == 0 || (before.ends_with('市') && before.chars().count() <= 5) {
                    rest = &rest[i + name.len()..];
                    cores.push(rest);
                }
                break;
            }
        }
        if district.is_none() {
            // "徐州市": a city of 2–4 characters before 市.
            if let Some(i) = rest.find('市') {
                if (2..=4).contains(&rest[..i].chars().count()) && i + '市'.len_utf8() < rest.len() {
                    rest = &rest[i + '市'.len_utf8()..];
                    cores.push(rest);
                }
            }
        }
        cores.dedup();
        (cores, district)
    }

    /// The longest road name at the start of `s`, else the leftmost longest anywhere in it:
    /// (byte start, byte end, entries).
    fn find_road<'a>(&'a self, s: &str) -> Option<(usize, usize, Matches<'a>)> {
        if let Some((len, list)) = self.longest_prefix(s, &self.road_names) {
            return Some((0, len, list));
        }
        for (start, _) in s.char_indices().skip(1) {
            if let Some((len, list)) = self.longest_prefix(&s[start..], &self.road_names) {
                // A one-character "road" inside other text is noise.
                if s[start..start + len].chars().count() >= 2 {
                    return Some((start, start + len, list));
                }
            }
        }
        None
    }

    /// The longest key of `map` that is a prefix of `s`, as (byte length, value). Tries at most
    /// `max_road_chars` prefixes, longest first (POI names use the same bound plus slack: a
    /// POI longer than every road name is still found whole by the exact lookup).
    fn longest_prefix<'a>(
        &self,
        s: &str,
        map: &'a HashMap<String, Vec<(usize, bool)>>,
    ) -> Option<(usize, &'a [(usize, bool)])> {
        let bound = self.max_road_chars.max(24);
        let mut ends: Vec<usize> = s.char_indices().map(|(i, c)| i + c.len_utf8()).take(bound).collect();
        ends.reverse();
        ends.into_iter().find_map(|end| map.get(&s[..end]).map(|list| (end, list.as_slice())))
    }

    /// Roads and POIs whose name contains `fragment`, for the search box.
    fn fragment_hits(&self, fragment: &str, district: Option<usize>, hits: &mut Vec<GeocodeHit>) {
        let total = fragment.chars().count() as f64;
        for (name, list) in &self.road_names {
            if name.contains(fragment) && name.as_str() != fragment {
                let share = total / name.chars().count() as f64;
                for &(e, _) in list {
                    if let Some(a) = &self.road_entries[e].representative {
                        hits.push(self.hit(a.clone(), 0.5 * share, MatchLevel::Road, district));
                    }
                }
            }
        }
        for (name, list) in &self.pois {
            if name.contains(fragment) && name.as_str() != fragment {
                let share = total / name.chars().count() as f64;
                for &(ai, _) in list {
                    hits.push(self.hit(self.addresses[ai].clone(), 0.5 * share, MatchLevel::Poi, district));
                }
            }
        }
    }

    /// The door or POI nearest to WGS-84 `(lon, lat)` within `max_distance_m` metres, with its
    /// great-circle distance; ties go to the lowest code.
    pub fn reverse(&self, lon: f64, lat: f64, max_distance_m: f64) -> Option<(&Address, f64)> {
        if !lon.is_finite() || !lat.is_finite() {
            return None;
        }
        // As in `KioskIndex::nearest`: the nearest in the scaled plane bounds the true nearest
        // distance, and an exact pass over that circle's box settles it.
        let first = self.points.nearest_neighbor(&[lon * self.scale, lat])?;
        let a = &self.addresses[first.data];
        let guess = distance_m(lon, lat, a.lon, a.lat).min(max_distance_m.max(0.0));
        let (x0, y0, x1, y1) = radius_bbox(lon, lat, guess);
        let envelope = AABB::from_corners([x0 * self.scale, y0], [x1 * self.scale, y1]);
        let mut best: Option<(usize, f64)> = None;
        for entry in self.points.locate_in_envelope(&envelope) {
            let a = &self.addresses[entry.data];
            let d = distance_m(lon, lat, a.lon, a.lat);
            if best.is_none_or(|(bi, bd)| d < bd || (d == bd && entry.data < bi)) {
                best = Some((entry.data, d));
            }
        }
        let (i, d) = best?;
        (d <= max_distance_m).then(|| (&self.addresses[i], d))
    }

    /// The road whose centre line passes nearest to WGS-84 `(lon, lat)`, with the distance in
    /// metres (measured in a plane tangent at the point: exact to well under a metre at city
    /// distances). Ties go to the road given first.
    pub fn nearest_road(&self, lon: f64, lat: f64) -> Option<(&Road, f64)> {
        if !lon.is_finite() || !lat.is_finite() {
            return None;
        }
        let first = self.segments.nearest_neighbor(&[lon * self.scale, lat])?;
        let guess = self.segment_distance_m(lon, lat, first.geom());
        let (x0, y0, x1, y1) = radius_bbox(lon, lat, guess);
        let envelope = AABB::from_corners([x0 * self.scale, y0], [x1 * self.scale, y1]);
        let mut best = (first.data, guess);
        for entry in self.segments.locate_in_envelope_intersecting(&envelope) {
            let d = self.segment_distance_m(lon, lat, entry.geom());
            if d < best.1 || (d == best.1 && entry.data < best.0) {
                best = (entry.data, d);
            }
        }
        Some((&self.roads[best.0], best.1))
    }

    /// Distance in metres from `(lon, lat)` to a segment stored in the scaled plane, in a local
    /// equirectangular plane at the point's latitude.
    fn segment_distance_m(&self, lon: f64, lat: f64, seg: &Line<[f64; 2]>) -> f64 {
        const M_PER_DEG: f64 = 6_371_008.8 * std::f64::consts::PI / 180.0;
        let kx = lat.to_radians().cos() * M_PER_DEG;
        let to_local = |p: [f64; 2]| ((p[0] / self.scale - lon) * kx, (p[1] - lat) * M_PER_DEG);
        let (a, b) = (to_local(seg.from), to_local(seg.to));
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        let t = if len2 > 0.0 { (-(a.0 * dx + a.1 * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
        let (px, py) = (a.0 + t * dx, a.1 + t * dy);
        (px * px + py * py).sqrt()
    }
}

/// Sorts hits best first: confidence, then door before POI before road, then code.
fn pick_best(hits: &mut [GeocodeHit]) {
    hits.sort_by(|a, b| {
        b.confidence.total_cmp(&a.confidence).then(a.level.cmp(&b.level)).then(a.address.code.cmp(&b.address.code))
    });
}

/// An address standing for a road without a road row: a point on its line.
fn road_stand_in(road: &Road) -> Option<Address> {
    let p = road.line.interior_point().or_else(|| road.line.centroid())?;
    Some(Address {
        code: road.code.clone(),
        kind: AddressKind::Road,
        name: road.name.clone(),
        aliases: road.aliases.clone(),
        district: road.district.clone(),
        road: None,
        number: None,
        lon: p.x(),
        lat: p.y(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{LineString, MultiLineString};
    use rand::{Rng, SeedableRng};

    const QUANSHAN: &str = "320311";
    const GULOU: &str = "320302";

    fn rc(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    fn door(code: &str, district: &str, road: &str, number: &str, lon: f64, lat: f64) -> Address {
        Address {
            code: code.to_owned(),
            kind: AddressKind::Door,
            name: format!("{road}{number}"),
            aliases: Vec::new(),
            district: rc(district),
            road: Some(road.to_owned()),
            number: Some(number.to_owned()),
            lon,
            lat,
        }
    }

    fn poi(code: &str, name: &str, aliases: &[&str], lon: f64, lat: f64) -> Address {
        Address {
            code: code.to_owned(),
            kind: AddressKind::Poi,
            name: name.to_owned(),
            aliases: aliases.iter().map(|s| (*s).to_owned()).collect(),
            district: rc(QUANSHAN),
            road: None,
            number: None,
            lon,
            lat,
        }
    }

    fn road(code: &str, name: &str, aliases: &[&str], district: &str, pts: Vec<(f64, f64)>) -> Road {
        Road {
            code: code.to_owned(),
            name: name.to_owned(),
            aliases: aliases.iter().map(|s| (*s).to_owned()).collect(),
            district: rc(district),
            line: MultiLineString(vec![LineString::from(pts)]),
        }
    }

    fn book() -> AddressBook {
        let mut addresses = vec![
            door("320311-D-1", QUANSHAN, "淮海东路", "18号", 117.190, 34.262),
            door("320311-D-2", QUANSHAN, "淮海东路", "18-2号", 117.1902, 34.262),
            door("320311-D-3", QUANSHAN, "淮海东路", "20号", 117.191, 34.262),
            door("320311-D-4", QUANSHAN, "淮海东路", "100号", 117.199, 34.262),
            door("320302-D-5", GULOU, "解放路", "5号", 117.20, 34.28),
            door("320311-D-6", QUANSHAN, "解放路", "7号", 117.17, 34.25),
            poi("320311-P-1", "徐州市第一中学", &["一中"], 117.185, 34.265),
            poi("320311-P-2", "彭城广场", &[], 117.188, 34.263),
        ];
        addresses.reverse();
        let roads = vec![
            road("R1", "淮海东路", &["淮海路东段"], QUANSHAN, vec![(117.18, 34.262), (117.20, 34.262)]),
            road("R2", "解放路", &[], GULOU, vec![(117.20, 34.27), (117.20, 34.29)]),
            road("R3", "解放路", &[], QUANSHAN, vec![(117.17, 34.24), (117.17, 34.26)]),
        ];
        let districts = vec![(rc(QUANSHAN), "泉山区".to_owned()), (rc(GULOU), "鼓楼区".to_owned())];
        AddressBook::new(addresses, roads, districts)
    }

    fn top(b: &AddressBook, q: &str) -> GeocodeHit {
        b.geocode(q).unwrap_or_else(|| panic!("no hit for {q}"))
    }

    #[test]
    fn normalize_full_width_and_spaces() {
        assert_eq!(normalize("ＡＢＣ１２３，　淮海 东路"), "ABC123淮海东路");
        assert_eq!(normalize(" 18－2號 "), "18-2号");
    }

    #[test]
    fn door_with_and_without_admin_prefix() {
        let b = book();
        for q in [
            "淮海东路18号",
            "江苏省徐州市泉山区淮海东路18号",
            "徐州市 淮海东路 １８号",
            "泉山区淮海东路18号",
            "徐州市泉山区淮海东路18号",
        ] {
            let h = top(&b, q);
            assert_eq!((h.address.code.as_str(), h.level), ("320311-D-1", MatchLevel::Door), "{q}");
            assert_eq!(h.confidence, 1.0, "{q}");
            assert_eq!((h.lon, h.lat), (117.190, 34.262));
        }
        let h = top(&b, "淮海东路18-2号");
        assert_eq!((h.address.code.as_str(), h.confidence), ("320311-D-2", 1.0));
    }

    #[test]
    fn number_variants_and_aliases() {
        let b = book();
        for q in ["淮海东路十八号", "淮海东路18", "淮海东路一八号"] {
            let h = top(&b, q);
            assert_eq!(h.address.code, "320311-D-1", "{q}");
            assert!((h.confidence - 0.9).abs() < 1e-9, "{q}: {}", h.confidence);
        }
        let h = top(&b, "淮海路东段18号");
        assert_eq!(h.address.code, "320311-D-1");
        assert!((h.confidence - 0.9).abs() < 1e-9);
        let h = top(&b, "淮海东路18号门口");
        assert_eq!(h.address.code, "320311-D-1");
        assert!(h.confidence < 1.0 && h.confidence >= 0.9);
        // a sub-number that does not exist: the main building
        let h = top(&b, "淮海东路18-7号");
        assert_eq!((h.address.code.as_str(), h.level), ("320311-D-1", MatchLevel::Door));
        assert!(h.confidence < 0.9);
    }

    #[test]
    fn pois_and_aliases() {
        let b = book();
        let h = top(&b, "徐州市第一中学");
        assert_eq!((h.address.code.as_str(), h.level, h.confidence), ("320311-P-1", MatchLevel::Poi, 1.0));
        let h = top(&b, "一中");
        assert_eq!(h.address.code, "320311-P-1");
        assert!((h.confidence - 0.9).abs() < 1e-9);
        let h = top(&b, "泉山区 彭城广场");
        assert_eq!((h.address.code.as_str(), h.confidence), ("320311-P-2", 1.0));
        let h = top(&b, "彭城广场东门");
        assert_eq!(h.address.code, "320311-P-2");
        assert!(h.confidence < 0.9);
    }

    #[test]
    fn missing_numbers_fall_back() {
        let b = book();
        // 22号 does not exist: 20号 is two numbers away
        let h = top(&b, "淮海东路22号");
        assert_eq!((h.address.code.as_str(), h.level), ("320311-D-3", MatchLevel::Door));
        assert!(h.confidence < 0.7 && h.confidence > 0.6, "{}", h.confidence);
        // 500号 is far from every number: the road
        let h = top(&b, "淮海东路500号");
        assert_eq!((h.address.code.as_str(), h.level), ("R1", MatchLevel::Road));
        assert!((h.confidence - 0.6).abs() < 1e-9);
        // the road alone is exactly what was asked
        let h = top(&b, "淮海东路");
        assert_eq!((h.address.code.as_str(), h.level, h.confidence), ("R1", MatchLevel::Road, 1.0));
        // a road with text but no number
        let h = top(&b, "淮海东路附近");
        assert_eq!(h.level, MatchLevel::Road);
        assert!((h.confidence - 0.6).abs() < 1e-9);
    }

    #[test]
    fn districts_disambiguate_and_contradict() {
        let b = book();
        // 解放路 exists in both districts; the district picks it
        assert_eq!(top(&b, "鼓楼区解放路").address.code, "R2");
        assert_eq!(top(&b, "泉山区解放路").address.code, "R3");
        let h = top(&b, "鼓楼区解放路5号");
        assert_eq!((h.address.code.as_str(), h.confidence), ("320302-D-5", 1.0));
        // without a district, the road that has the door wins
        assert_eq!(top(&b, "解放路7号").address.code, "320311-D-6");
        // a district contradicting the only road of that name lowers confidence
        let h = top(&b, "鼓楼区淮海东路18号");
        assert_eq!(h.address.code, "320311-D-1");
        assert!((h.confidence - 0.7).abs() < 1e-9, "{}", h.confidence);
        // only a district
        let h = top(&b, "江苏省徐州市泉山区");
        assert_eq!((h.level, h.address.code.as_str(), h.confidence), (MatchLevel::District, QUANSHAN, 0.3));
        assert!(b.geocode("火星基地").is_none());
        assert!(b.geocode("  ").is_none());
    }

    #[test]
    fn search_lists_alternatives() {
        let b = book();
        let hits = b.search("解放路", 10);
        let codes: Vec<&str> = hits.iter().map(|h| h.address.code.as_str()).collect();
        assert!(codes.contains(&"R2") && codes.contains(&"R3"), "{codes:?}");
        let hits = b.search("淮海", 10);
        assert_eq!(hits[0].address.code, "R1");
        assert!(hits[0].confidence < 0.6);
        assert_eq!(b.search("解放路", 1).len(), 1);
        let hits = b.search("第一中学", 5);
        assert_eq!(hits[0].address.code, "320311-P-1");
    }

    #[test]
    fn reverse_agrees_with_brute_force() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let addresses: Vec<Address> = (0..2000)
            .map(|i| {
                let (lon, lat) = (rng.gen_range(117.1..117.3), rng.gen_range(34.2..34.35));
                if i % 3 == 0 {
                    poi(&format!("P{i:05}"), &format!("点{i}"), &[], lon, lat)
                } else {
                    door(&format!("D{i:05}"), QUANSHAN, &format!("路{}", i % 50), &format!("{i}号"), lon, lat)
                }
            })
            .collect();
        let roads: Vec<Road> = (0..60)
            .map(|i| {
                let pts = (0..4).map(|_| (rng.gen_range(117.1..117.3), rng.gen_range(34.2..34.35))).collect();
                road(&format!("R{i:03}"), &format!("路{i}"), &[], QUANSHAN, pts)
            })
            .collect();
        let b = AddressBook::new(addresses.clone(), roads.clone(), vec![]);
        for _ in 0..500 {
            let (lon, lat) = (rng.gen_range(117.08..117.32), rng.gen_range(34.18..34.37));
            let want = addresses.iter().map(|a| distance_m(lon, lat, a.lon, a.lat)).fold(f64::INFINITY, f64::min);
            let (a, d) = b.reverse(lon, lat, 1e6).unwrap();
            assert!((d - want).abs() < 1e-6 && (distance_m(lon, lat, a.lon, a.lat) - d).abs() < 1e-9);
            assert!(b.reverse(lon, lat, want * 0.99).is_none());

            let want = roads
                .iter()
                .flat_map(|r| r.line.0[0].lines())
                .map(|s| {
                    let seg = Line::new([s.start.x * b.scale, s.start.y], [s.end.x * b.scale, s.end.y]);
                    b.segment_distance_m(lon, lat, &seg)
                })
                .fold(f64::INFINITY, f64::min);
            let (_, d) = b.nearest_road(lon, lat).unwrap();
            assert!((d - want).abs() < 1e-6, "{d} vs {want}");
        }
        assert!(b.reverse(f64::NAN, 34.2, 10.0).is_none());
        let empty = AddressBook::new(vec![], vec![], vec![]);
        assert!(empty.reverse(117.2, 34.2, 1e6).is_none() && empty.nearest_road(117.2, 34.2).is_none());
    }

    #[test]
    fn nearest_road_distance_is_in_metres() {
        let b = book();
        // 0.001° of latitude north of 淮海东路 is about 111 m
        let (r, d) = b.nearest_road(117.19, 34.263).unwrap();
        assert_eq!(r.code, "R1");
        assert!((d - 111.2).abs() < 0.5, "{d}");
        let (a, d) = b.reverse(117.190, 34.2621, 50.0).unwrap();
        assert_eq!(a.code, "320311-D-1");
        assert!(d < 12.0);
    }

    #[test]
    fn number_parsing() {
        let p = |s: &str| parse_number(s).map(|(n, c, t)| (n.main, n.sub, c, t));
        assert_eq!(p("18号"), Some((18, None, true, false)));
        assert_eq!(p("18-2号"), Some((18, Some(2), true, false)));
        assert_eq!(p("18之2号"), Some((18, Some(2), false, false)));
        assert_eq!(p("十八号"), Some((18, None, false, false)));
        assert_eq!(p("一百零五号"), Some((105, None, false, false)));
        assert_eq!(p("二十"), Some((20, None, false, false)));
        assert_eq!(p("18号楼"), Some((18, None, true, true)));
        assert_eq!(p("附近"), None);
    }
}
