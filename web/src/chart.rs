//! A device card's chart, drawn with plotters on its canvas: the temperature, the
//! counterfactual (dashed, lighter), the band edges, a mark where each command arrived, and
//! the humidity (thin, on its own scale at the right).

use fleet_core::payload::Action;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters_canvas::CanvasBackend;
use web_sys::HtmlCanvasElement;

use crate::view_model::DeviceSnap;

const ACTUAL: RGBColor = RGBColor(31, 119, 180);
const COUNTERFACTUAL: RGBColor = RGBColor(160, 160, 160);
const BAND: RGBColor = RGBColor(46, 160, 67);
const COOL: RGBColor = RGBColor(0, 120, 215);
const HEAT: RGBColor = RGBColor(214, 39, 40);
const RELEASE: RGBColor = RGBColor(90, 90, 90);
const HUMIDITY: RGBColor = RGBColor(148, 103, 189);
const GRID: RGBColor = RGBColor(235, 235, 235);

/// The values a scale from `lo` to `hi` marks: multiples of a step of 1, 2 or 5 times a
/// power of ten, the smallest that marks at most `max + 1` values, with the decimals that
/// print every one of them differently (a step of 0.5 gets one decimal).
pub fn ticks(lo: f64, hi: f64, max: usize) -> (Vec<f64>, usize) {
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) || max == 0 {
        return (Vec::new(), 0);
    }
    let raw = span / max as f64;
    // power <= raw < 10 * power, and its decimals.
    let (mut power, mut decimals) = (1.0_f64, 0_usize);
    while power > raw {
        power /= 10.0;
        decimals += 1;
    }
    while power * 10.0 <= raw {
        power *= 10.0;
    }
    let step = [2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .fold(power, |chosen, s| if chosen < raw { s } else { chosen });
    if step >= 10.0 * power {
        decimals = decimals.saturating_sub(1);
    }
    let first = (lo / step).ceil();
    let values = (0..=max)
        .map(|k| (first + k as f64) * step)
        .take_while(|&v| v <= hi)
        .collect();
    (values, decimals)
}

/// The colour of a command's mark.
pub fn action_color(action: Action) -> RGBColor {
    match action {
        Action::Cool => COOL,
        Action::Heat => HEAT,
        Action::Release => RELEASE,
    }
}

/// The y range shown: the band and every point, with a little margin.
pub fn y_range(device: &DeviceSnap, band_min: f64, band_max: f64) -> (f64, f64) {
    let (lo, hi) = device
        .points
        .iter()
        .fold((band_min, band_max), |(lo, hi), &(_, t, c)| {
            (lo.min(t).min(c), hi.max(t).max(c))
        });
    let margin = ((hi - lo) * 0.08).max(0.2);
    (lo - margin, hi + margin)
}

/// The humidity range shown: the points with a little margin (at least 1 %).
pub fn humidity_range(device: &DeviceSnap) -> (f64, f64) {
    let (lo, hi) = device
        .humidity
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &(_, h)| {
            (lo.min(h), hi.max(h))
        });
    if lo > hi {
        return (0.0, 100.0);
    }
    let margin = ((hi - lo) * 0.08).max(0.5);
    (lo - margin, hi + margin)
}

/// Draws `device` on `canvas`. Drawing errors leave the canvas as it was.
pub fn draw(canvas: HtmlCanvasElement, device: &DeviceSnap, band_min: f64, band_max: f64) {
    let Some(backend) = CanvasBackend::with_canvas_object(canvas) else {
        return;
    };
    let _ = draw_on(backend.into_drawing_area(), device, band_min, band_max);
}

fn draw_on<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    device: &DeviceSnap,
    band_min: f64,
    band_max: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let first = device.points.first().map_or(0, |p| p.0);
    // Markers carry the next reading's seq, so the newest may lie one past the last point.
    let last = device
        .points
        .last()
        .map(|p| p.0)
        .into_iter()
        .chain(device.markers.last().map(|m| m.0))
        .max()
        .unwrap_or(1)
        .max(first + 1);
    let (y_lo, y_hi) = y_range(device, band_min, band_max);
    let (h_lo, h_hi) = humidity_range(device);
    let mut chart = ChartBuilder::on(&root)
        .margin(4)
        .x_label_area_size(0)
        .y_label_area_size(30)
        .right_y_label_area_size(28)
        .build_cartesian_2d(first as f64..last as f64, y_lo..y_hi)?
        .set_secondary_coord(first as f64..last as f64, h_lo..h_hi);
    // The scales are drawn here, not by plotters' mesh: the mesh sizes every label with a
    // DOM element it adds, measures and removes (plotters' web font backend), i.e. a
    // forced layout of the whole page per label, seven per card and redraw, which made
    // the page's long tasks at 50,000 devices. `Text` goes straight to the canvas's
    // `fillText`, anchored, with nothing measured.
    // Fonts as `FontFamily::SansSerif`, not "sans-serif": plotters lowercases a family
    // given as text, which links Unicode's case tables (14 KB) into the wasm.
    let (x0, x1) = (first as f64, last as f64);
    let left =
        TextStyle::from((FontFamily::SansSerif, 10)).pos(Pos::new(HPos::Right, VPos::Center));
    let (temperatures, decimals) = ticks(y_lo, y_hi, 4);
    for t in temperatures {
        let (a, y) = chart.backend_coord(&(x0, t));
        let (b, _) = chart.backend_coord(&(x1, t));
        root.draw(&PathElement::new([(a, y), (b, y)], GRID))?;
        root.draw(&Text::new(
            format!("{t:.decimals$}"),
            (a - 3, y),
            left.clone(),
        ))?;
    }
    let right = TextStyle::from((FontFamily::SansSerif, 9))
        .color(&HUMIDITY)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let (humidities, decimals) = ticks(h_lo, h_hi, 3);
    for h in humidities {
        let (b, y) = chart.borrow_secondary().backend_coord(&(x1, h));
        root.draw(&Text::new(
            format!("{h:.decimals$}%"),
            (b + 3, y),
            right.clone(),
        ))?;
    }
    chart.draw_secondary_series(LineSeries::new(
        device.humidity.iter().map(|&(s, h)| (s as f64, h)),
        HUMIDITY.mix(0.55).stroke_width(1),
    ))?;
    for edge in [band_min, band_max] {
        chart.draw_series(DashedLineSeries::new(
            [(first as f64, edge), (last as f64, edge)],
            6,
            4,
            BAND.stroke_width(1),
        ))?;
    }
    chart.draw_series(DashedLineSeries::new(
        device.points.iter().map(|&(s, _, c)| (s as f64, c)),
        4,
        3,
        COUNTERFACTUAL.stroke_width(2),
    ))?;
    chart.draw_series(LineSeries::new(
        device.points.iter().map(|&(s, t, _)| (s as f64, t)),
        ACTUAL.stroke_width(2),
    ))?;
    for &(seq, action) in &device.markers {
        let x = seq as f64;
        let color = action_color(action);
        chart.draw_series(std::iter::once(PathElement::new(
            [(x, y_lo), (x, y_hi)],
            color.mix(0.35).stroke_width(1),
        )))?;
        chart.draw_series(std::iter::once(TriangleMarker::new(
            (x, y_hi - (y_hi - y_lo) * 0.04),
            5,
            color.filled(),
        )))?;
    }
    root.present()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_mark_round_values_that_print_differently() {
        assert_eq!(ticks(24.3, 31.9, 4), (vec![26.0, 28.0, 30.0], 0));
        assert_eq!(ticks(59.6, 61.1, 3), (vec![60.0, 60.5, 61.0], 1));
        assert_eq!(ticks(0.0, 100.0, 3), (vec![0.0, 50.0, 100.0], 0));
        assert_eq!(ticks(25.8, 28.3, 4), (vec![26.0, 27.0, 28.0], 0));
        assert_eq!(ticks(5.0, 5.0, 4), (vec![], 0));
        assert_eq!(ticks(0.0, f64::NAN, 4), (vec![], 0));
        for (lo, hi, max) in [
            (20.5, 33.2, 4),
            (59.71, 60.02, 3),
            (-3.0, 1_200.0, 4),
            (26.0, 28.0, 4),
        ] {
            let (values, decimals) = ticks(lo, hi, max);
            assert!(
                !values.is_empty() && values.len() <= max + 1,
                "{lo}..{hi}: {values:?}"
            );
            assert!(
                values.iter().all(|v| (lo..=hi).contains(v)),
                "{lo}..{hi}: {values:?}"
            );
            let labels: Vec<String> = values.iter().map(|v| format!("{v:.decimals$}")).collect();
            let mut distinct = labels.clone();
            distinct.dedup();
            assert_eq!(distinct, labels, "{lo}..{hi}");
        }
    }

    #[test]
    fn the_y_range_holds_the_band_and_every_point() {
        let device = DeviceSnap {
            id: "d".into(),
            commands: 0,
            temperature: Some(30.0),
            link: crate::transport::LinkState::Up,
            custom_params: false,
            points: vec![(1, 30.0, 31.0), (2, 25.0, 27.0)],
            markers: vec![],
            humidity: vec![(1, 61.0), (2, 59.5)],
        };
        let (lo, hi) = y_range(&device, 26.0, 28.0);
        assert!(lo < 25.0 && hi > 31.0);
        let empty = DeviceSnap {
            points: vec![],
            ..device.clone()
        };
        let (lo, hi) = y_range(&empty, 26.0, 28.0);
        assert!(lo < 26.0 && hi > 28.0);
        let (lo, hi) = humidity_range(&device);
        assert!(lo < 59.5 && hi > 61.0);
        let none = DeviceSnap {
            humidity: vec![],
            ..device
        };
        assert_eq!(humidity_range(&none), (0.0, 100.0));
    }
}

/// The overview's layout: `cols` columns of square cells of `cell` px for `n` devices on
/// a canvas `width` px wide whose height is at most `max_height` px. Returns
/// `(cols, cell, height)`.
pub fn overview_layout(n: usize, width: f64, max_height: f64) -> (usize, f64, f64) {
    if n == 0 || width <= 0.0 {
        return (1, 0.0, 0.0);
    }
    // The largest cell (up to 18 px) with which every device fits.
    let mut cell = 18.0_f64;
    loop {
        let cols = ((width / cell).floor() as usize).max(1);
        let rows = n.div_ceil(cols);
        if rows as f64 * cell <= max_height || cell <= 2.0 {
            return (cols, cell, rows as f64 * cell);
        }
        cell -= 1.0;
    }
}

/// The colour of a device's overview cell, RGBA: its level against the band, grey while its
/// connection is not up.
pub fn overview_colour(
    device: &crate::view_model::DeviceSnap,
    band_min: f64,
    band_max: f64,
) -> [u8; 4] {
    use crate::transport::LinkState;
    use crate::view_model::Level;
    match (
        device.link,
        Level::of(device.temperature, band_min, band_max),
    ) {
        (LinkState::Idle | LinkState::Connecting | LinkState::Retrying, _) => [201, 206, 214, 255],
        (_, Level::Unknown) => [228, 231, 235, 255],
        (_, Level::Cold) => [31, 119, 208, 255],
        (_, Level::InBand) => [46, 160, 67, 255],
        (_, Level::Hot) => [214, 39, 40, 255],
    }
}

/// The overview's pixels (RGBA rows, `width` × `height`): `cols` columns of `cell` px cells
/// (less a 1 px gap from 6 px up), one per device, the rest transparent.
pub fn overview_pixels(
    snapshot: &crate::view_model::Snapshot,
    width: usize,
    height: usize,
    cols: usize,
    cell: usize,
) -> Vec<u8> {
    let mut pixels = vec![0_u8; width * height * 4];
    let fill = if cell >= 6 { cell - 1 } else { cell };
    for (i, d) in snapshot.devices.iter().enumerate() {
        let colour = overview_colour(d, snapshot.band_min, snapshot.band_max);
        let (x, y) = ((i % cols) * cell, (i / cols) * cell);
        for row in y..(y + fill).min(height) {
            let from = (row * width + x) * 4;
            let to = (row * width + (x + fill).min(width)) * 4;
            for px in pixels[from..to.max(from)].chunks_exact_mut(4) {
                px.copy_from_slice(&colour);
            }
        }
    }
    pixels
}

/// Draws one cell per device (see [`overview_pixels`]) as one image: one call into the
/// canvas for 25,000 devices rather than two per device.
pub fn draw_overview(canvas: &HtmlCanvasElement, snapshot: &crate::view_model::Snapshot) {
    use wasm_bindgen::{Clamped, JsCast};

    let width = f64::from(canvas.client_width()).max(1.0);
    let (cols, cell, height) = overview_layout(snapshot.devices.len(), width, 120.0);
    let (w, h) = (width as u32, height.max(1.0) as u32);
    // Resizing clears the canvas and its backing store: only when the size changed.
    if canvas.width() != w || canvas.height() != h {
        canvas.set_width(w);
        canvas.set_height(h);
    }
    let pixels = overview_pixels(snapshot, w as usize, h as usize, cols, cell as usize);
    let image = web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&pixels), w, h);
    let context = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok());
    if let (Ok(image), Some(ctx)) = (image, context) {
        let _ = ctx.put_image_data(&image, 0.0, 0.0);
    }
}

#[cfg(test)]
mod overview_tests {
    use super::*;

    #[test]
    fn every_device_gets_a_cell_within_the_height() {
        assert_eq!(overview_layout(12, 1000.0, 120.0), (55, 18.0, 18.0));
        let (cols, cell, height) = overview_layout(1000, 1000.0, 120.0);
        assert!(cols * (height / cell) as usize >= 1000);
        assert!(height <= 120.0, "{height}");
        let (cols, cell, _) = overview_layout(25_000, 1000.0, 120.0);
        assert_eq!(cell, 2.0);
        assert_eq!(cols, 500);
    }

    #[test]
    fn overview_pixels_colour_one_cell_per_device() {
        use crate::transport::LinkState;
        use crate::view_model::{DeviceSnap, Snapshot};
        let device = |temperature: Option<f64>, link| DeviceSnap {
            id: "d".into(),
            commands: 0,
            temperature,
            link,
            custom_params: false,
            points: vec![],
            markers: vec![],
            humidity: vec![],
        };
        let snapshot = Snapshot {
            devices: vec![
                device(Some(30.0), LinkState::Up),
                device(Some(27.0), LinkState::Up),
                device(Some(20.0), LinkState::Up),
                device(Some(27.0), LinkState::Connecting),
                device(None, LinkState::Up),
            ],
            ..Snapshot::default()
        };
        // 2 columns of 6 px cells (5 px and a gap) on a 13 × 18 px canvas.
        let (w, h) = (13, 18);
        let pixels = overview_pixels(&snapshot, w, h, 2, 6);
        assert_eq!(pixels.len(), w * h * 4);
        let at = |x: usize, y: usize| &pixels[(y * w + x) * 4..][..4];
        let colour = |i: usize| overview_colour(&snapshot.devices[i], 26.0, 28.0);
        assert_eq!(at(0, 0), colour(0));
        assert_eq!(colour(0), [214, 39, 40, 255]);
        assert_eq!(at(4, 4), colour(0));
        assert_eq!(at(5, 0), [0, 0, 0, 0]); // the gap
        assert_eq!(at(6, 0), colour(1));
        assert_eq!(at(0, 6), colour(2));
        assert_eq!(at(10, 10), colour(3));
        assert_eq!(colour(3), [201, 206, 214, 255]);
        assert_eq!(at(0, 12), colour(4));
        assert_eq!(at(12, 17), [0, 0, 0, 0]);
        // 25,000 devices in 2 px cells: every pixel of their rows is painted.
        let many = Snapshot {
            devices: vec![device(Some(27.0), LinkState::Up); 25_000],
            ..Snapshot::default()
        };
        let (cols, cell, height) = overview_layout(25_000, 1000.0, 120.0);
        let pixels = overview_pixels(&many, 1000, height as usize, cols, cell as usize);
        assert!(pixels.chunks_exact(4).all(|p| p == [46, 160, 67, 255]));
    }
}
