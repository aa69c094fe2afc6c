//! Columns for people, and times as time left.

use k8s_openapi::jiff::Timestamp;

/// `in 59m58s`, or `12s ago`.
pub fn until(at: Timestamp) -> String {
    let seconds = at.as_second() - Timestamp::now().as_second();
    let span = human(seconds.unsigned_abs());
    if seconds >= 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// Time left to `at` as a column value: `59m58s`, `expired`, or `-`.
pub fn left(at: Option<Timestamp>) -> String {
    match at {
        None => "-".to_owned(),
        Some(at) if at <= Timestamp::now() => "expired".to_owned(),
        Some(at) => human((at.as_second() - Timestamp::now().as_second()) as u64),
    }
}

/// At most two units, as kubectl shows ages: `3d4h`, `1h5m`, `42s`.
fn human(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// Rows as aligned columns, the header first.
pub fn print(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i == last {
                    cell.to_string()
                } else {
                    format!("{cell:<width$}", width = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("   ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(header.to_vec()));
    for row in rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_show_two_units_at_most() {
        assert_eq!(human(42), "42s");
        assert_eq!(human(3598), "59m58s");
        assert_eq!(human(3 * 3600 + 5 * 60 + 7), "3h5m");
        assert_eq!(human(2 * 86_400 + 3600), "2d1h");
    }
}
