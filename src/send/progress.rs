//! Progress of a send: an indicatif bar on a terminal, plain log lines
//! every few seconds elsewhere (a cron job's log, CI).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::worker::Counters;

pub struct Progress {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts reporting `counters` against `total` deliveries due this run.
    pub fn start(counters: Arc<Counters>, total: u64, quiet: bool) -> Progress {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let terminal = std::io::stderr().is_terminal() && !quiet;
        let task = tokio::spawn(async move {
            let bar = terminal.then(|| {
                let bar = ProgressBar::new(total);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{bar:32.cyan/blue} {pos}/{len} {msg} · {per_sec} · ETA {eta}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                bar
            });
            let started = Instant::now();
            let tick = if terminal {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(5)
            };
            loop {
                let done = tokio::select! {
                    _ = tokio::time::sleep(tick) => false,
                    _ = stopped.changed() => true,
                };
                let (sent, deferred, failed) = counters.snapshot();
                let message = format!("sent {sent} · deferred {deferred} · failed {failed}");
                match &bar {
                    Some(bar) => {
                        bar.set_position(sent + failed);
                        bar.set_message(message);
                    }
                    None if !quiet => {
                        let rate = sent as f64 / started.elapsed().as_secs_f64().max(0.001);
                        tracing::info!("{message} of {total} · {rate:.0}/s");
                    }
                    None => {}
                }
                if done {
                    if let Some(bar) = bar {
                        bar.finish_and_clear();
                    }
                    break;
                }
            }
        });
        Progress { stop, task }
    }

    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
