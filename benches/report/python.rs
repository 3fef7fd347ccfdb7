//! The Python baseline: sessions kept the usual way of a Python web app, as a dict of
//! per-session dicts, and the stale ones dropped by a dict comprehension that compares
//! each session's idle time with the timeout. The script is generated here and run with
//! `python3`.

use std::process::Command;
use std::time::Duration;

/// Builds a dict of `sessions` entries keyed like ours, `stale` of them stale, and
/// returns the median time of the comprehension that keeps the rest.
pub fn comprehension_time(sessions: usize, stale: usize) -> Result<Duration, String> {
    let script = format!(
        r#"
import random, statistics, time
n, stale = {sessions}, {stale}
idle_timeout = 3600
order = list(range(n))
random.seed(1)
random.shuffle(order)
times = []
for run in range(3):
    sessions = {{}}
    for k, key in enumerate(order):
        sessions["s%09d" % key] = {{
            "created": 0,
            "last_active": n + k,
            "activity_count": 1,
            "source": "api",
        }}
    now = n + stale - 1 + idle_timeout
    started = time.perf_counter()
    sessions = {{
        key: session
        for key, session in sessions.items()
        if now - session["last_active"] < idle_timeout
    }}
    times.append(time.perf_counter() - started)
    assert len(sessions) == n - stale
print(statistics.median(times))
"#
    );
    let output = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .map_err(|error| format!("python3 could not be run ({error})"))?;
    if !output.status.success() {
        return Err(format!(
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("unexpected python3 output {:?}", text.trim()))?;
    Ok(Duration::from_secs_f64(secs))
}
