//! Resident memory per pending task: 1,000,000 tasks that each wait
//! forever, on unplug and on tokio (same worker count), each measured in a
//! fresh child process of this same run so one does not inherit the
//! other's heap.
//!
//! Run: `cargo run --release --example memory [-- --tasks N]`

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

fn wait_for(n: usize, polled: &AtomicUsize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while polled.load(Relaxed) < n {
        assert!(Instant::now() < deadline, "tasks never polled");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Bytes of RSS per pending task in this process.
fn child(runtime: &str, n: usize) -> f64 {
    let polled = Arc::new(AtomicUsize::new(0));
    let task = |p: Arc<AtomicUsize>| async move {
        p.fetch_add(1, Relaxed);
        std::future::pending::<()>().await
    };
    match runtime {
        "unplug" => {
            let rt = unplug::Runtime::builder().workers(4).build().unwrap();
            let before = rss_bytes();
            for _ in 0..n {
                drop(rt.spawn(task(polled.clone())));
            }
            wait_for(n, &polled);
            let per = (rss_bytes() - before) as f64 / n as f64;
            std::mem::forget(rt); // exit without cancelling a million tasks
            per
        }
        _ => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .unwrap();
            let before = rss_bytes();
            for _ in 0..n {
                drop(rt.spawn(task(polled.clone())));
            }
            wait_for(n, &polled);
            let per = (rss_bytes() - before) as f64 / n as f64;
            std::mem::forget(rt);
            per
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .iter()
        .position(|a| a == "--tasks")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let per = child(&args[i + 1], n);
        println!("{per}");
        std::process::exit(0);
    }
    let exe = std::env::current_exe().unwrap();
    let mut results = Vec::new();
    for runtime in ["unplug", "tokio"] {
        let out = std::process::Command::new(&exe)
            .args(["--child", runtime, "--tasks", &n.to_string()])
            .output()
            .expect("run the child");
        assert!(
            out.status.success(),
            "{runtime} child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let per: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        results.push(per);
        println!("{runtime:<8} {per:>8.1} bytes of RSS per pending task ({n} tasks)");
    }
    println!(
        "unplug/tokio memory per task: {:.2}",
        results[0] / results[1]
    );
}
