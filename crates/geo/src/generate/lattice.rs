//! The lattice the synthetic city is cut from, and the two operations on sets of its cells that
//! every layer needs: splitting a set into connected parts, and tracing a set's outline.
//!
//! A cell is one unit grid (~112 m square, so ~12,600 m², the "万米单元网格" of the standard).
//! Lattice vertices are jittered by a hash of their position, so grids look surveyed rather than
//! ruled, yet neighbours share the very same vertex: grids tile with no gaps or overlaps and
//! every larger region (community, street, district, patrol district...) is traced along those
//! shared vertices, so its boundary coincides bit for bit with its grids' edges. Jitter stays
//! under a quarter cell, which keeps every quadrilateral convex (and so simple).

use geo::{Coord, LineString, MultiPolygon, Polygon};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// "No label" in the per-cell label arrays.
pub(super) const NONE: u32 = u32::MAX;

/// How far (in cells) a vertex may move from its nominal position, per axis.
const JITTER: f64 = 0.18;

/// A rectangle of `cols × rows` cells; cell `(c, r)` has column `c` counted west→east and row `r`
/// counted north→south, so row-major order is the reading order grids are numbered in.
#[derive(Debug, Clone)]
pub(super) struct Lattice {
    pub west: f64,
    pub north: f64,
    pub dlon: f64,
    pub dlat: f64,
    pub cols: u32,
    pub rows: u32,
    pub jitter_key: u64,
}

/// SplitMix64: a fast, well-mixed hash for per-vertex jitter (no generator state to keep).
pub(super) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps a hash to [-1, 1).
fn signed_unit(h: u64) -> f64 {
    ((h >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
}

/// Rounds to 1e-7° (about 1 cm): shorter files, and the same value however it is reached.
pub(super) fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

impl Lattice {
    pub fn len(&self) -> usize {
        self.cols as usize * self.rows as usize
    }

    pub fn cell(&self, c: u32, r: u32) -> u32 {
        r * self.cols + c
    }

    pub fn cr(&self, cell: u32) -> (u32, u32) {
        (cell % self.cols, cell / self.cols)
    }

    /// Vertex ids run over `(cols + 1) × (rows + 1)` corners.
    fn vid(&self, c: u32, r: u32) -> u32 {
        r * (self.cols + 1) + c
    }

    fn vcr(&self, v: u32) -> (u32, u32) {
        (v % (self.cols + 1), v / (self.cols + 1))
    }

    /// The jittered corner `(c, r)` (north-west corner of cell `(c, r)`).
    pub fn vertex(&self, c: u32, r: u32) -> Coord<f64> {
        let h = mix(self.jitter_key ^ ((u64::from(r) << 32) | u64::from(c)));
        let jx = signed_unit(h) * JITTER;
        let jy = signed_unit(mix(h)) * JITTER;
        Coord {
            x: round7(self.west + (f64::from(c) + jx) * self.dlon),
            y: round7(self.north - (f64::from(r) + jy) * self.dlat),
        }
    }

    /// Corners counter-clockwise from the south-west: SW, SE, NE, NW.
    pub fn quad(&self, cell: u32) -> [Coord<f64>; 4] {
        let (c, r) = self.cr(cell);
        [self.vertex(c, r + 1), self.vertex(c + 1, r + 1), self.vertex(c + 1, r), self.vertex(c, r)]
    }

    pub fn polygon(&self, cell: u32) -> Polygon<f64> {
        let q = self.quad(cell);
        Polygon::new(LineString::new(vec![q[0], q[1], q[2], q[3], q[0]]), vec![])
    }

    /// A point inside the (convex) cell: `u` west→east, `v` south→north, both in 0..1.
    pub fn point_in(&self, cell: u32, u: f64, v: f64) -> Coord<f64> {
        let [sw, se, ne, nw] = self.quad(cell);
        let south = Coord { x: sw.x + (se.x - sw.x) * u, y: sw.y + (se.y - sw.y) * u };
        let north = Coord { x: nw.x + (ne.x - nw.x) * u, y: nw.y + (ne.y - nw.y) * u };
        Coord { x: south.x + (north.x - south.x) * v, y: south.y + (north.y - south.y) * v }
    }

    pub fn centre(&self, cell: u32) -> Coord<f64> {
        self.point_in(cell, 0.5, 0.5)
    }

    /// The unjittered centre of `(c, r)` in degrees, for selecting cells.
    pub fn nominal_centre(&self, c: u32, r: u32) -> (f64, f64) {
        (self.west + (f64::from(c) + 0.5) * self.dlon, self.north - (f64::from(r) + 0.5) * self.dlat)
    }

    /// The 4-neighbours inside the lattice.
    pub fn neighbours(&self, cell: u32) -> impl Iterator<Item = u32> {
        let (c, r) = self.cr(cell);
        let (cols, rows) = (self.cols, self.rows);
        [
            (c > 0).then(|| cell - 1),
            (c + 1 < cols).then(|| cell + 1),
            (r > 0).then(|| cell - cols),
            (r + 1 < rows).then(|| cell + cols),
        ]
        .into_iter()
        .flatten()
    }
}

/// Squared distance between cell centres, in cells² (exact integers: ties break the same way
/// on every machine).
fn dist2(l: &Lattice, a: u32, b: u32) -> u64 {
    let (ac, ar) = l.cr(a);
    let (bc, br) = l.cr(b);
    let dc = u64::from(ac.abs_diff(bc));
    let dr = u64::from(ar.abs_diff(br));
    dc * dc + dr * dr
}

/// Splits `cells` into `k` parts (fewer if there are fewer cells), each grown over 4-adjacency
/// from a seed so parts are connected wherever `cells` is; returns the part of each cell, in the
/// order of `cells`, numbered in reading order of the parts' centres (north→south, west→east).
///
/// Seeds are spread by farthest-point sampling from `start` (an index into `cells`), then moved
/// twice to the middle of their part (Lloyd's relaxation), which makes parts of even size and
/// compact shape, like the streets and communities of a real city.
pub(super) fn partition(l: &Lattice, cells: &[u32], k: usize, start: usize, local: &mut [u32]) -> Vec<u32> {
    let n = cells.len();
    let k = k.clamp(1, n.max(1));
    if n == 0 {
        return Vec::new();
    }
    for (i, &c) in cells.iter().enumerate() {
        local[c as usize] = i as u32;
    }
    let mut seeds = Vec::with_capacity(k);
    let mut best = vec![u64::MAX; n];
    let mut next = start.min(n - 1);
    for _ in 0..k {
        seeds.push(cells[next]);
        let s = cells[next];
        let mut far = (0u64, 0usize);
        for (i, &c) in cells.iter().enumerate() {
            let d = dist2(l, c, s);
            if d < best[i] {
                best[i] = d;
            }
            if best[i] > far.0 {
                far = (best[i], i);
            }
        }
        next = far.1;
    }
    let mut part = flood(l, cells, &seeds, local);
    for _ in 0..2 {
        let mut sum = vec![(0u64, 0u64, 0u64); seeds.len()];
        for (i, &c) in cells.iter().enumerate() {
            let (cc, rr) = l.cr(c);
            let s = &mut sum[part[i] as usize];
            *s = (s.0 + u64::from(cc), s.1 + u64::from(rr), s.2 + 1);
        }
        let mut nearest = vec![(u64::MAX, 0u32); seeds.len()];
        for (i, &c) in cells.iter().enumerate() {
            let p = part[i] as usize;
            let (cc, rr) = l.cr(c);
            let (sc, sr, sn) = sum[p];
            // Distance to the mean, scaled by the count to stay in integers.
            let dc = (u64::from(cc) * sn).abs_diff(sc);
            let dr = (u64::from(rr) * sn).abs_diff(sr);
            let d = dc.saturating_mul(dc).saturating_add(dr.saturating_mul(dr));
            if d < nearest[p].0 {
                nearest[p] = (d, c);
            }
        }
        seeds = nearest.iter().map(|&(_, c)| c).collect();
        part = flood(l, cells, &seeds, local);
    }
    for &c in cells {
        local[c as usize] = NONE;
    }
    // Renumber in reading order of the parts' mean positions.
    let mut sum = vec![(0u64, 0u64, 0u64); seeds.len()];
    for (i, &c) in cells.iter().enumerate() {
        let (cc, rr) = l.cr(c);
        let s = &mut sum[part[i] as usize];
        *s = (s.0 + u64::from(cc), s.1 + u64::from(rr), s.2 + 1);
    }
    let mut order: Vec<usize> = (0..seeds.len()).collect();
    // Rows of ~4 cells' height band the parts, so "north→south, then west→east" reads naturally.
    order.sort_by_key(|&p| {
        let (sc, sr, sn) = sum[p];
        let n = sn.max(1);
        (sr / n / 4, sc / n, p)
    });
    let mut rank = vec![0u32; seeds.len()];
    for (i, &p) in order.iter().enumerate() {
        rank[p] = i as u32;
    }
    part.iter().map(|&p| rank[p as usize]).collect()
}

/// Multi-source growth: every cell goes to the part whose seed is nearest among those that
/// reach it through cells of the set. Cells no seed reaches (a separate island of the set) go
/// to the part of the nearest seed, growing from there.
fn flood(l: &Lattice, cells: &[u32], seeds: &[u32], local: &[u32]) -> Vec<u32> {
    let mut part = vec![NONE; cells.len()];
    let mut heap = BinaryHeap::new();
    for (p, &s) in seeds.iter().enumerate() {
        heap.push(Reverse((0u64, s, p as u32)));
    }
    let mut assigned = 0usize;
    let mut scan = 0usize;
    loop {
        while let Some(Reverse((_, cell, p))) = heap.pop() {
            let i = local[cell as usize] as usize;
            if part[i] != NONE {
                continue;
            }
            part[i] = p;
            assigned += 1;
            for nb in l.neighbours(cell) {
                let j = local[nb as usize];
                if j != NONE && part[j as usize] == NONE {
                    heap.push(Reverse((dist2(l, nb, seeds[p as usize]), nb, p)));
                }
            }
        }
        if assigned == cells.len() {
            return part;
        }
        while part[scan] != NONE {
            scan += 1;
        }
        let island = cells[scan];
        let p = (0..seeds.len()).min_by_key(|&p| (dist2(l, island, seeds[p]), p)).unwrap_or(0);
        // Only this island is left to grow, so distances from the far seed still order it.
        heap.push(Reverse((0, island, p as u32)));
    }
}

/// Direction of a boundary edge: 0 east, 1 north, 2 west, 3 south (counter-clockwise order, so
/// `d + 1` is a left turn).
type Dir = u8;

/// The outline of every labelled part: `labels` is indexed by lattice cell (`NONE` outside the
/// set), `cells` lists the labelled cells. Returns one multipolygon per label `0..n`.
///
/// Each part's boundary edges are oriented with the part on their left and chained into rings,
/// turning as far left as possible where two corners of the part meet at a vertex, so touching
/// pieces become separate rings. A ring may still pass a vertex twice (a hole touching the
/// outline); such rings are split there, which yields the OGC form (shell plus touching hole,
/// or two holes touching at a point). Counter-clockwise rings are shells, clockwise ones holes,
/// each hole given to the smallest shell around it.
pub(super) fn trace(l: &Lattice, labels: &[u32], cells: &[u32], n: usize) -> Vec<MultiPolygon<f64>> {
    let mut edges: Vec<Vec<(u32, u32, Dir)>> = vec![Vec::new(); n];
    let label = |c: i64, r: i64| -> u32 {
        if c < 0 || r < 0 || c >= i64::from(l.cols) || r >= i64::from(l.rows) {
            NONE
        } else {
            labels[(r as u32 * l.cols + c as u32) as usize]
        }
    };
    for &cell in cells {
        let lab = labels[cell as usize];
        if lab == NONE {
            continue;
        }
        let (c, r) = l.cr(cell);
        let (ci, ri) = (i64::from(c), i64::from(r));
        let e = &mut edges[lab as usize];
        if label(ci, ri + 1) != lab {
            e.push((l.vid(c, r + 1), l.vid(c + 1, r + 1), 0));
        }
        if label(ci + 1, ri) != lab {
            e.push((l.vid(c + 1, r + 1), l.vid(c + 1, r), 1));
        }
        if label(ci, ri - 1) != lab {
            e.push((l.vid(c + 1, r), l.vid(c, r), 2));
        }
        if label(ci - 1, ri) != lab {
            e.push((l.vid(c, r), l.vid(c, r + 1), 3));
        }
    }
    edges.iter_mut().map(|e| outline(l, e)).collect()
}

fn outline(l: &Lattice, edges: &mut [(u32, u32, Dir)]) -> MultiPolygon<f64> {
    edges.sort_unstable();
    let from_at = |v: u32| -> std::ops::Range<usize> {
        let lo = edges.partition_point(|e| e.0 < v);
        let hi = edges.partition_point(|e| e.0 <= v);
        lo..hi
    };
    let mut used = vec![false; edges.len()];
    let mut rings: Vec<Vec<u32>> = Vec::new();
    for first in 0..edges.len() {
        if used[first] {
            continue;
        }
        let mut ring = Vec::new();
        let mut cur = first;
        loop {
            used[cur] = true;
            let (from, to, dir) = edges[cur];
            ring.push(from);
            // Prefer left, then straight, then right; the first edge closes the ring.
            let mut next = None;
            for turn in [1u8, 0, 3] {
                let want = (dir + turn) % 4;
                if let Some(i) = from_at(to).find(|&i| edges[i].2 == want && (!used[i] || i == first)) {
                    next = Some(i);
                    break;
                }
            }
            match next {
                Some(i) if i != first => cur = i,
                _ => break,
            }
        }
        split_repeats(ring, &mut rings);
    }
    assemble(l, rings)
}

/// Splits a closed vertex sequence wherever it visits a vertex twice.
fn split_repeats(ring: Vec<u32>, out: &mut Vec<Vec<u32>>) {
    let mut stack: Vec<u32> = Vec::with_capacity(ring.len());
    let mut at: HashMap<u32, usize> = HashMap::new();
    for v in ring {
        if let Some(&p) = at.get(&v) {
            let lp: Vec<u32> = stack.drain(p + 1..).collect();
            for x in &lp {
                at.remove(x);
            }
            let mut closed = vec![v];
            closed.extend(lp);
            out.push(closed);
        } else {
            at.insert(v, stack.len());
            stack.push(v);
        }
    }
    if stack.len() >= 3 {
        out.push(stack);
    }
}

/// Twice the signed area in lattice units (x east = c, y north = -r): exact.
fn area2(l: &Lattice, ring: &[u32]) -> i64 {
    let mut a = 0i64;
    for (i, &v) in ring.iter().enumerate() {
        let w = ring[(i + 1) % ring.len()];
        let (c0, r0) = l.vcr(v);
        let (c1, r1) = l.vcr(w);
        a += i64::from(c0) * -i64::from(r1) - i64::from(c1) * -i64::from(r0);
    }
    a
}

/// Even-odd test of a lattice-unit point against a ring of vertex ids.
fn inside(l: &Lattice, ring: &[u32], x: f64, y: f64) -> bool {
    let mut odd = false;
    for (i, &v) in ring.iter().enumerate() {
        let w = ring[(i + 1) % ring.len()];
        let (c0, r0) = l.vcr(v);
        let (c1, r1) = l.vcr(w);
        let (x0, y0, x1, y1) = (f64::from(c0), -f64::from(r0), f64::from(c1), -f64::from(r1));
        if (y0 > y) != (y1 > y) && x < x0 + (y - y0) * (x1 - x0) / (y1 - y0) {
            odd = !odd;
        }
    }
    odd
}

fn assemble(l: &Lattice, rings: Vec<Vec<u32>>) -> MultiPolygon<f64> {
    let mut shells: Vec<(i64, Vec<u32>, Vec<Vec<u32>>)> = Vec::new();
    let mut holes = Vec::new();
    for ring in rings {
        let a = area2(l, &ring);
        if a > 0 {
            shells.push((a, ring, Vec::new()));
        } else if a < 0 {
            holes.push(ring);
        }
    }
    for hole in holes {
        // A point strictly inside the hole: the middle of the cell right of its first edge,
        // nudged toward that edge's midpoint so it cannot sit on another ring.
        let (c0, r0) = l.vcr(hole[0]);
        let (c1, r1) = l.vcr(hole[1]);
        let (mx, my) = ((f64::from(c0) + f64::from(c1)) / 2.0, -(f64::from(r0) + f64::from(r1)) / 2.0);
        let (dx, dy) = (f64::from(c1) - f64::from(c0), -(f64::from(r1) - f64::from(r0)));
        // Right of direction (dx, dy) is (dy, -dx).
        let (px, py) = (mx + dy * 0.25, my - dx * 0.25);
        let owner = shells
            .iter()
            .enumerate()
            .filter(|(_, s)| inside(l, &s.1, px, py))
            .min_by_key(|(i, s)| (s.0, *i))
            .map(|(i, _)| i);
        if let Some(i) = owner {
            shells[i].2.push(hole);
        }
    }
    let to_line = |ring: &[u32]| -> LineString<f64> {
        let mut pts: Vec<Coord<f64>> = ring
            .iter()
            .map(|&v| {
                let (c, r) = l.vcr(v);
                l.vertex(c, r)
            })
            .collect();
        if let Some(&p) = pts.first() {
            pts.push(p);
        }
        LineString::new(pts)
    };
    MultiPolygon(
        shells
            .iter()
            .map(|(_, shell, hs)| Polygon::new(to_line(shell), hs.iter().map(|h| to_line(h)).collect()))
            .collect(),
    )
}
