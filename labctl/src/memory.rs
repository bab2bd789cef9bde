//! Memory figures: what this machine (or this process's cgroup) has available, this process's
//! peak from a point on, and sizes as a person writes and reads them (`512MiB`, `2.5 GiB`).

/// The memory a new allocation can count on now: the kernel's `MemAvailable`, lowered to what
/// the cgroup's `memory.max` leaves, where there is one. None where neither is known.
pub fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let available = meminfo.as_deref().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    // cgroup v2: "max" (no limit) does not parse, and leaves the machine's figure.
    let cgroup =
        read("memory.max").map(|max| max.saturating_sub(read("memory.current").unwrap_or(0)));
    match (available, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// `bytes` for a person: `512 MiB`, `3.2 GiB`.
pub fn show(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    } else if b >= KIB * KIB {
        format!("{:.0} MiB", b / (KIB * KIB))
    } else if b >= KIB {
        format!("{:.0} KiB", b / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// A size as written on the command line: a number with an optional unit, `B`, `K`/`KiB`,
/// `M`/`MiB`, `G`/`GiB`, `T`/`TiB` (powers of 1024), e.g. `512MiB`, `1.5G`, `2 GiB`.
pub fn parse(text: &str) -> Result<u64, String> {
    let bad =
        || format!("{text:?} is not a size: write a number and a unit, e.g. 512MiB, 1.5GiB or 2G");
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// The process's peak resident memory from a point on (Linux: `VmHWM`, reset through
/// `/proc/self/clear_refs`). Unknown elsewhere, or where the reset is not allowed.
pub struct PeakMemory {
    known: bool,
}

impl PeakMemory {
    /// Start counting from now.
    pub fn reset() -> PeakMemory {
        PeakMemory {
            known: std::fs::write("/proc/self/clear_refs", "5").is_ok(),
        }
    }

    /// The peak since [`PeakMemory::reset`], in bytes.
    pub fn read(&self) -> Option<u64> {
        if !self.known {
            return None;
        }
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse("512MiB"), Ok(512 << 20));
        assert_eq!(parse("1.5G"), Ok(3 << 29));
        assert_eq!(parse("2 GiB"), Ok(2 << 30));
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("64k"), Ok(64 << 10));
        for bad in ["", "GiB", "-1G", "1.2.3M", "12 parsecs", "0"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes_show_in_the_largest_fitting_unit() {
        assert_eq!(show(512 << 20), "512 MiB");
        assert_eq!(show(3_435_973_837), "3.2 GiB");
        assert_eq!(show(2048), "2 KiB");
        assert_eq!(show(12), "12 bytes");
    }

    #[test]
    fn this_machine_says_what_it_has_and_the_peak_follows_what_is_touched() {
        assert!(available().expect("/proc/meminfo has MemAvailable") > 0);
        // 64 MiB written after a reset raise the peak by at least that much over the start.
        let before = PeakMemory::reset();
        let start = before.read().expect("Linux reports VmHWM");
        let block = vec![1u8; 64 << 20];
        let peak = before.read().unwrap();
        assert_eq!(block.iter().map(|&b| u64::from(b)).sum::<u64>(), 64 << 20);
        assert!(peak >= start + (64 << 20), "{start} → {peak}");
    }
}
