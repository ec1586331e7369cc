//! Text for PNG charts without system fonts: a plotters backend that draws shapes with the
//! bitmap backend and text with GNU Unifont's bitmap glyphs (the `unifont` crate: every
//! character of the Basic Multilingual Plane, 8×16 pixels for Latin, 16×16 for Chinese).
//!
//! Why: plotters' own text rendering needs `font-kit` and the fonts installed on the machine
//! (a server usually has none with Chinese), or a TrueType font we would have to ship — a
//! Chinese one is 10–20 MB. Unifont's glyph table is about 2 MB in the binary, compiles in
//! seconds, is readable at chart sizes, and gives every region name in Chinese. Characters
//! outside the BMP (rare CJK Extension B names) are drawn as an empty box. Text of 24 px and
//! more is drawn at twice the size; rotated text (the y axis label) is supported.

use plotters::prelude::*;
use plotters_backend::{
    text_anchor::{HPos, VPos},
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind, FontTransform,
};

/// Pixels per glyph cell at scale 1.
const CELL: i32 = 16;

/// Glyph scale for a font size in pixels.
fn scale(size: f64) -> i32 {
    if size >= 24.0 {
        2
    } else {
        1
    }
}

/// Width in pixels of `text` at scale 1.
pub fn text_width(text: &str) -> i32 {
    text.chars().map(|c| glyph_width(c) as i32).sum()
}

fn glyph_width(c: char) -> usize {
    match unifont::get_glyph(c) {
        Some(g) => g.get_width(),
        // Unknown: a full-width box for wide characters, a half-width one otherwise.
        None if (c as u32) >= 0x1100 => 16,
        None => 8,
    }
}

/// The bitmap backend with Unifont text.
pub struct PixelFontBackend<'a> {
    pub inner: BitMapBackend<'a>,
}

impl PixelFontBackend<'_> {
    fn put(
        &mut self,
        x: i32,
        y: i32,
        s: i32,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>> {
        let (w, h) = self.inner.get_size();
        if x + s <= 0 || y + s <= 0 || x >= w as i32 || y >= h as i32 {
            return Ok(());
        }
        for dy in 0..s {
            for dx in 0..s {
                self.inner.draw_pixel((x + dx, y + dy), color)?;
            }
        }
        Ok(())
    }
}

impl DrawingBackend for PixelFontBackend<'_> {
    type ErrorType = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }
    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let s = scale(style.size());
        Ok(((text_width(text) * s) as u32, (CELL * s) as u32))
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let s = scale(style.size());
        let (w, h) = (text_width(text) * s, CELL * s);
        // Top-left of the unrotated text box, relative to the anchor.
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Center => -w / 2,
            HPos::Right => -w,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let transform = style.transform();
        let bold = matches!(style.style(), FontStyle::Bold);
        let mut pen = 0;
        for c in text.chars() {
            let gw = glyph_width(c) as i32;
            let glyph = unifont::get_glyph(c);
            for gy in 0..CELL {
                for gx in 0..gw {
                    let on = match glyph {
                        Some(g) => g.get_pixel(gx as usize, gy as usize),
                        // An empty box for a character Unifont does not have.
                        None => gx == 1 || gx == gw - 2 || gy == 1 || gy == CELL - 2,
                    };
                    if !on {
                        continue;
                    }
                    for b in 0..if bold { 2 } else { 1 } {
                        let (x, y) = ((pen + gx) * s + dx + b, gy * s + dy);
                        let (x, y) = rotate(&transform, x, y);
                        self.put(pos.0 + x, pos.1 + y, s, color)?;
                    }
                }
            }
            pen += gw;
        }
        Ok(())
    }
}

/// Rotate a point of the text box around the anchor, as plotters' transforms do.
fn rotate(t: &FontTransform, x: i32, y: i32) -> (i32, i32) {
    match t {
        FontTransform::None => (x, y),
        FontTransform::Rotate90 => (-y, x),
        FontTransform::Rotate180 => (-x, -y),
        FontTransform::Rotate270 => (y, -x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_follow_unifont() {
        assert_eq!(text_width("A1"), 16);
        assert_eq!(text_width("街道"), 32);
        assert_eq!(text_width("丰财街道 A"), 4 * 16 + 8 + 8);
    }

    #[test]
    fn chinese_text_sets_pixels_in_its_box() {
        let (w, h) = (80u32, 40u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let backend = PixelFontBackend { inner: BitMapBackend::with_buffer(&mut buf, (w, h)) };
            let root = backend.into_drawing_area();
            root.draw(&Text::new("街道", (10, 10), ("sans-serif", 14).into_font().color(&BLACK))).unwrap();
            root.present().unwrap();
        }
        let dark = |x: u32, y: u32| buf[((y * w + x) * 3) as usize] < 128;
        let inside = (10..42).flat_map(|x| (10..26).map(move |y| (x, y))).filter(|&(x, y)| dark(x, y)).count();
        let outside = (0..w).flat_map(|x| (0..h).map(move |y| (x, y))).filter(|&(x, y)| dark(x, y)).count() - inside;
        assert!(inside > 40, "the glyphs are drawn ({inside} dark pixels)");
        assert_eq!(outside, 0, "nothing outside the text box");
    }
}
