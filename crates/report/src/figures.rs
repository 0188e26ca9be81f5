//! Figures as self-contained SVG: the paper's heatmap of p(true class) over
//! images x transformation (Fig. 2A), p(true class) traces of example images
//! (Fig. 1), the map of mean p(true class) over 2-D offsets, and bars of
//! P(top-1 change) and jaggedness per model and family.

use jagged_domain::transform::{Axis, Figures};
use std::fmt::Write as _;

/// Images whose traces are kept for the heatmap.
pub const MAX_TRACES: usize = 40;
/// Images drawn as lines in the trace plot.
pub const MAX_LINES: usize = 6;

/// A point's (dx, dy, scale, angle).
pub type PointParams = (f32, f32, f32, f32);

/// What the figures of one (model, family) need, gathered while streaming parts.
#[derive(Clone, Debug, Default)]
pub struct FigureData {
    /// Each point's (dx, dy, scale, angle), by point index.
    pub points: Vec<PointParams>,
    /// The first images' p(true class) at every point.
    pub traces: Vec<(String, Vec<Option<f32>>)>,
    /// Sum and count of p(true class) per point, over all labelled images.
    pub sum: Vec<f64>,
    /// See `sum`.
    pub count: Vec<u64>,
}

impl FigureData {
    /// Empty, for a family with these points.
    pub fn for_points(points: Vec<PointParams>) -> FigureData {
        let n = points.len();
        FigureData { points, traces: vec![], sum: vec![0.0; n], count: vec![0; n] }
    }

    /// Adds one image: its rows' point indices and p(true class) (NaN when
    /// unlabelled).
    pub fn add_image(&mut self, name: &str, point: &[i32], p_label: &[f32]) {
        let n = point.iter().map(|&p| p as usize + 1).max().unwrap_or(0);
        if self.points.len() < n {
            self.points.resize(n, (0.0, 0.0, 1.0, 0.0));
        }
        if self.sum.len() < self.points.len() {
            self.sum.resize(self.points.len(), 0.0);
            self.count.resize(self.points.len(), 0);
        }
        let keep = self.traces.len() < MAX_TRACES;
        let mut trace = if keep { vec![None; n] } else { vec![] };
        for (&i, &p) in point.iter().zip(p_label) {
            if !p.is_nan() {
                let i = i as usize;
                self.sum[i] += p as f64;
                self.count[i] += 1;
                if keep {
                    trace[i] = Some(p);
                }
            }
        }
        if keep && trace.iter().any(Option::is_some) {
            self.traces.push((name.to_string(), trace));
        }
    }

    /// Adds the data of images that come after this one's.
    pub fn merge(&mut self, o: FigureData) {
        if self.points.len() < o.points.len() {
            self.points.clone_from(&o.points);
        }
        let n = self.points.len();
        self.sum.resize(n, 0.0);
        self.count.resize(n, 0);
        o.sum.iter().enumerate().for_each(|(i, v)| self.sum[i] += v);
        o.count.iter().enumerate().for_each(|(i, v)| self.count[i] += v);
        let room = MAX_TRACES.saturating_sub(self.traces.len());
        self.traces.extend(o.traces.into_iter().take(room));
    }

    /// The x value and axis name of each point: what the family's line of
    /// points varies, or the point's place in the grid.
    fn axis(&self, figures: Figures) -> (Vec<f64>, &'static str) {
        let x = |f: &dyn Fn(&PointParams) -> f64| self.points.iter().map(f).collect();
        let index = || (0..self.points.len()).map(|i| i as f64).collect();
        match figures.line {
            Some((Axis::Scale, label)) => (x(&|p| p.2 as f64), label),
            Some((Axis::Angle, label)) => (x(&|p| p.3 as f64), label),
            Some((Axis::Dx, label)) => (x(&|p| p.0 as f64), label),
            Some((Axis::Index, label)) => (index(), label),
            None => (index(), "grid point"),
        }
    }

    /// For a 2-D grid: side length and the mean p(true class) per point, row-major.
    fn grid(&self) -> Option<(usize, Vec<Option<f64>>, f32)> {
        let n = (self.points.len() as f64).sqrt().round() as usize;
        if n < 2 || n * n != self.points.len() {
            return None;
        }
        let m = self.points.iter().map(|p| p.0).fold(0.0, f32::max);
        let means = self.sum.iter().zip(&self.count).map(|(s, c)| (*c > 0).then(|| s / *c as f64)).collect();
        Some((n, means, m))
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Viridis-like colour for v in [0, 1].
fn color(v: f64) -> String {
    const STOPS: [(f64, f64, f64); 5] = [(68.0, 1.0, 84.0), (59.0, 82.0, 139.0), (33.0, 145.0, 140.0), (94.0, 201.0, 98.0), (253.0, 231.0, 37.0)];
    let v = v.clamp(0.0, 1.0) * 4.0;
    let i = (v.floor() as usize).min(3);
    let t = v - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let c = |x: f64, y: f64| (x + (y - x) * t).round() as u8;
    format!("#{:02x}{:02x}{:02x}", c(a.0, b.0), c(a.1, b.1), c(a.2, b.2))
}

const FONT: &str = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

fn header(w: u32, h: u32, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" {FONT} font-size=\"12\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        w / 2,
        esc(title)
    )
}

fn colorbar(out: &mut String, x: f64, y: f64, h: f64, label: &str, range: (&str, &str)) {
    for i in 0..50 {
        let v = 1.0 - i as f64 / 49.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"14\" height=\"{:.2}\" fill=\"{}\"/>",
            y + h * i as f64 / 50.0,
            h / 50.0 + 0.5,
            color(v)
        );
    }
    let _ =
        writeln!(out, "<text x=\"{}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\">{}</text>", x + 18.0, y + 10.0, range.1, x + 18.0, y + h, range.0);
    let _ = writeln!(out, "<text transform=\"translate({},{}) rotate(90)\" text-anchor=\"middle\">{}</text>", x + 36.0, y + h / 2.0, esc(label));
}

/// Colours of models and images in charts.
const PALETTE: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/// Five horizontal grid lines from 0 to `ymax` with their values.
fn y_grid(out: &mut String, left: f64, pw: f64, ymax: f64, sy: impl Fn(f64) -> f64) {
    for t in 0..=4 {
        let v = ymax * t as f64 / 4.0;
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.3}</text>",
            left + pw,
            left - 6.0,
            sy(v) + 4.0,
            y = sy(v)
        );
    }
}

/// One legend entry: a colour square and a name, baseline at `y`.
fn legend(out: &mut String, x: f64, y: f64, colour: &str, name: &str) {
    let _ = writeln!(
        out,
        "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{}\" y=\"{y}\">{}</text>",
        y - 10.0,
        x + 18.0,
        esc(name)
    );
}

fn fmt_tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.2}")
    }
}

/// Heatmap of p(true class): one row per image, one column per point.
pub fn heatmap(title: &str, data: &FigureData, figures: Figures) -> Option<String> {
    if data.traces.is_empty() || data.points.is_empty() {
        return None;
    }
    let (xs, xlabel) = data.axis(figures);
    let (cols, rows) = (data.points.len(), data.traces.len());
    let cell_w = (640.0 / cols as f64).clamp(2.0, 40.0);
    let cell_h = (480.0 / rows as f64).clamp(6.0, 24.0);
    let (left, top) = (170.0, 40.0);
    let w = (left + cell_w * cols as f64 + 80.0) as u32;
    let h = (top + cell_h * rows as f64 + 60.0) as u32;
    let mut out = header(w, h, title);
    for (r, (name, trace)) in data.traces.iter().enumerate() {
        let y = top + r as f64 * cell_h;
        let _ = writeln!(out, "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"10\">{}</text>", left - 6.0, y + cell_h * 0.75, esc(name));
        for (c, v) in trace.iter().enumerate() {
            let fill = v.map(|v| color(v as f64)).unwrap_or_else(|| "#dddddd".into());
            let _ = writeln!(
                out,
                "<rect x=\"{:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{cell_h:.2}\" fill=\"{fill}\"/>",
                left + c as f64 * cell_w,
                cell_w + 0.3
            );
        }
    }
    let step = (cols / 8).max(1);
    for c in (0..cols).step_by(step) {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
            left + (c as f64 + 0.5) * cell_w,
            top + rows as f64 * cell_h + 14.0,
            fmt_tick(xs[c])
        );
    }
    let _ = writeln!(out, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>", left + cell_w * cols as f64 / 2.0, h - 12, esc(xlabel));
    colorbar(&mut out, left + cell_w * cols as f64 + 16.0, top, (cell_h * rows as f64).min(300.0), "p(true class)", ("0", "1"));
    out.push_str("</svg>\n");
    Some(out)
}

/// p(true class) against the transformation for the first example images.
pub fn traces(title: &str, data: &FigureData, figures: Figures) -> Option<String> {
    if data.traces.is_empty() || data.points.len() < 2 {
        return None;
    }
    let (xs, xlabel) = data.axis(figures);
    let (x0, x1) = (xs.iter().cloned().fold(f64::INFINITY, f64::min), xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
    let (left, top, pw, ph) = (60.0, 40.0, 560.0, 300.0);
    let mut out = header(820, 400, title);
    let sx = |x: f64| left + if x1 > x0 { (x - x0) / (x1 - x0) * pw } else { pw / 2.0 };
    let sy = |y: f64| top + (1.0 - y) * ph;
    let _ = writeln!(out, "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>");
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{t}</text>",
            left + pw,
            left - 6.0,
            sy(t) + 4.0,
            y = sy(t)
        );
    }
    let step = (xs.len() / 8).max(1);
    for x in xs.iter().step_by(step) {
        let _ = writeln!(out, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>", sx(*x), top + ph + 16.0, fmt_tick(*x));
    }
    let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>", left + pw / 2.0, top + ph + 40.0, esc(xlabel));
    let _ = writeln!(out, "<text transform=\"translate(16,{}) rotate(-90)\" text-anchor=\"middle\">p(true class)</text>", top + ph / 2.0);
    for (k, (name, trace)) in data.traces.iter().take(MAX_LINES).enumerate() {
        let pts: Vec<String> = trace.iter().zip(&xs).filter_map(|(v, x)| v.map(|v| format!("{:.1},{:.1}", sx(*x), sy(v as f64)))).collect();
        let col = PALETTE[k % PALETTE.len()];
        let _ = writeln!(out, "<polyline points=\"{}\" fill=\"none\" stroke=\"{col}\" stroke-width=\"1.5\"/>", pts.join(" "));
        let ly = top + 14.0 + 18.0 * k as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{col}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{}</text>",
            left + pw + 12.0,
            left + pw + 32.0,
            left + pw + 36.0,
            ly + 4.0,
            esc(name)
        );
    }
    out.push_str("</svg>\n");
    Some(out)
}

/// Mean p(true class) over a 2-D grid of offsets.
pub fn grid_map(title: &str, data: &FigureData) -> Option<String> {
    let (n, means, m) = data.grid()?;
    let cell = (360.0 / n as f64).clamp(8.0, 40.0);
    let (left, top) = (60.0, 40.0);
    let w = (left + cell * n as f64 + 130.0) as u32;
    let h = (top + cell * n as f64 + 50.0) as u32;
    let mut out = header(w, h, title);
    let (lo, hi) = means.iter().flatten().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let norm = |v: f64| if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
    for r in 0..n {
        for c in 0..n {
            let fill = means[r * n + c].map(|v| color(norm(v))).unwrap_or_else(|| "#dddddd".into());
            let _ = writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\"/>",
                left + c as f64 * cell,
                top + r as f64 * cell,
                cell + 0.3,
                cell + 0.3
            );
        }
    }
    let span = cell * n as f64;
    let _ = writeln!(
        out,
        "<text x=\"{left}\" y=\"{}\" font-size=\"10\">dx = -{m}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\">dx = {m}</text>",
        top + span + 14.0,
        left + span,
        top + span + 14.0
    );
    let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\">dy = -{m}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\">dy = {m}</text>", left - 4.0, top + 10.0, left - 4.0, top + span);
    colorbar(&mut out, left + span + 60.0, top, span.min(300.0), "mean p(true class)", (&format!("{lo:.3}"), &format!("{hi:.3}")));
    out.push_str("</svg>\n");
    Some(out)
}

/// Grouped bars: one group per family label, one bar per model.
pub fn bars(title: &str, ylabel: &str, values: &[(String, String, Option<f64>)]) -> Option<String> {
    let mut families: Vec<&str> = Vec::new();
    let mut models: Vec<&str> = Vec::new();
    for (m, f, _) in values {
        if !families.contains(&f.as_str()) {
            families.push(f);
        }
        if !models.contains(&m.as_str()) {
            models.push(m);
        }
    }
    if families.is_empty() {
        return None;
    }
    let max = values.iter().filter_map(|v| v.2).fold(0.0f64, f64::max).max(1e-9);
    let ymax = (max * 1.1).min(1.0).max(max);
    let (left, top, ph) = (60.0, 40.0, 280.0);
    let bw = 18.0;
    let gw = bw * models.len() as f64 + 24.0;
    let pw = gw * families.len() as f64;
    let w = (left + pw + 200.0) as u32;
    let mut out = header(w, 400, title);
    let sy = |y: f64| top + (1.0 - y / ymax) * ph;
    y_grid(&mut out, left, pw, ymax, sy);
    for (fi, f) in families.iter().enumerate() {
        let gx = left + fi as f64 * gw + 12.0;
        for (mi, m) in models.iter().enumerate() {
            // A zero bar has no height to draw (and an empty rect is invalid SVG).
            if let Some(v) = values.iter().find(|x| x.0 == *m && x.1 == *f).and_then(|x| x.2).filter(|v| *v > 0.0) {
                let _ = writeln!(
                    out,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bw}\" height=\"{:.1}\" fill=\"{}\"><title>{} {}: {v:.4}</title></rect>",
                    gx + mi as f64 * bw,
                    sy(v),
                    top + ph - sy(v),
                    PALETTE[mi % PALETTE.len()],
                    esc(m),
                    esc(f)
                );
            }
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            gx + bw * models.len() as f64 / 2.0,
            top + ph + 16.0,
            esc(f)
        );
    }
    let _ = writeln!(out, "<line x1=\"{left}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#444\"/>", left + pw, top + ph, top + ph);
    let _ = writeln!(out, "<text transform=\"translate(16,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>", top + ph / 2.0, esc(ylabel));
    for (mi, m) in models.iter().enumerate() {
        legend(&mut out, left + pw + 16.0, top + 10.0 + 18.0 * mi as f64, PALETTE[mi % PALETTE.len()], m);
    }
    out.push_str("</svg>\n");
    Some(out)
}

/// Line chart of one value per x position (named by `labels`), one line per
/// series; `None` values break the line. `None` when there is nothing to draw.
pub fn lines(title: &str, xlabel: &str, ylabel: &str, labels: &[String], series: &[(String, Vec<Option<f64>>)]) -> Option<String> {
    let n = labels.len();
    let max = series.iter().flat_map(|s| s.1.iter().flatten()).copied().filter(|v| v.is_finite()).fold(f64::NAN, f64::max);
    if n == 0 || max.is_nan() {
        return None;
    }
    let ymax = (max * 1.1).max(1e-6);
    let (left, top, pw, ph) = (64.0, 40.0, 520.0, 280.0);
    let w = (left + pw + 200.0) as u32;
    let mut out = header(w, 380, title);
    let sx = |i: usize| left + if n > 1 { pw * i as f64 / (n - 1) as f64 } else { pw / 2.0 };
    let sy = |y: f64| top + (1.0 - y / ymax) * ph;
    y_grid(&mut out, left, pw, ymax, sy);
    for (i, label) in labels.iter().enumerate() {
        let _ = writeln!(out, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>", sx(i), top + ph + 16.0, esc(label));
    }
    for (k, (name, values)) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let mut path = String::new();
        let mut pen_down = false;
        for (i, v) in values.iter().enumerate().take(n) {
            match v.filter(|v| v.is_finite()) {
                Some(v) => {
                    let _ = write!(path, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, sx(i), sy(v));
                    let _ = writeln!(
                        out,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{} {}: {v:.4}</title></circle>",
                        sx(i),
                        sy(v),
                        esc(name),
                        esc(&labels[i])
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !path.is_empty() {
            let _ = writeln!(out, "<path d=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>", path.trim_end());
        }
        legend(&mut out, left + pw + 16.0, top + 10.0 + 18.0 * k as f64, colour, name);
    }
    let _ = writeln!(out, "<line x1=\"{left}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#444\"/>", left + pw, top + ph, top + ph);
    let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>", left + pw / 2.0, top + ph + 34.0, esc(xlabel));
    let _ = writeln!(out, "<text transform=\"translate(16,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>", top + ph / 2.0, esc(ylabel));
    out.push_str("</svg>\n");
    Some(out)
}

/// Rasterises an SVG to PNG (fonts from the system; text is skipped where none
/// is installed, the SVG keeps it).
pub fn png(svg: &str) -> Result<Vec<u8>, String> {
    let mut opt = resvg::usvg::Options::default();
    opt.fontdb_mut().load_system_fonts();
    let tree = resvg::usvg::Tree::from_str(svg, &opt).map_err(|e| e.to_string())?;
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).ok_or("empty figure")?;
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_run_from_dark_to_bright() {
        assert_eq!(color(0.0), "#440154");
        assert_eq!(color(1.0), "#fde725");
        assert_eq!(color(2.0), color(1.0));
    }

    #[test]
    fn bars_draw_one_rect_per_value_and_escape_names() {
        let v = vec![("a<b".to_string(), "crop".to_string(), Some(0.5)), ("c".into(), "crop".into(), Some(0.25)), ("c".into(), "embed".into(), None)];
        let svg = bars("t", "y", &v).unwrap();
        assert_eq!(svg.matches("<rect x=").count() - 2 /* legend */, 2);
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
    }

    #[test]
    fn lines_break_at_missing_values_and_rasterise() {
        let svg = lines(
            "t",
            "x",
            "y",
            &["1", "2", "3", "4"].map(String::from),
            &[("a<b".into(), vec![Some(0.1), None, Some(0.3), Some(0.2)]), ("c".into(), vec![Some(0.0)])],
        )
        .unwrap();
        assert_eq!(svg.matches("<path").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("a&lt;b"));
        // The gap starts a new sub-path.
        assert_eq!(svg.split("<path").nth(1).unwrap().matches('M').count(), 2);
        assert!(png(&svg).is_ok());
        assert_eq!(lines("t", "x", "y", &["0".to_string()], &[("a".into(), vec![None])]), None);
    }

    #[test]
    fn figures_rasterise_to_png() {
        let v = vec![("m".to_string(), "crop".to_string(), Some(0.5))];
        let png = png(&bars("t", "y", &v).unwrap()).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
