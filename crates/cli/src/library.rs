//! `mlx-manager pull | models | rm | search`: the model library from the command line, over the
//! same Hugging Face cache `serve`, the app, mlx-lm and huggingface_hub use.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use mlx_manager_library::{
    hub_dirs, CachedRepo, DownloadOptions, DownloadState, DownloadStatus, HubConfig, Library, LibraryError, ModelRef,
    SearchQuery, SearchSort,
};

/// What the library commands fail with.
#[derive(Debug, thiserror::Error)]
pub enum LibraryCliError {
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Failed(String),
    /// Ctrl-C: the download stopped; what it fetched stays for the next pull.
    #[error("interrupted: {kept} of {total} kept; run the same command again to resume")]
    Interrupted { kept: String, total: String },
}

/// `1.2 GiB`, `540.8 KiB`, `12 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn library() -> Result<Library, LibraryError> {
    let options = DownloadOptions { extra_caches: hub_dirs(), ..DownloadOptions::default() };
    Library::new(HubConfig::from_env()?, options)
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

#[derive(Args)]
pub struct PullArgs {
    /// The model: ORG/NAME, optionally @REVISION (a branch, tag or commit; main by default).
    model: String,
}

/// How progress is shown: a bar on a terminal, plain lines otherwise (logs, CI, pipes).
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { last_percent: u64, last_line: Instant },
}

impl Progress {
    fn new(status: &DownloadStatus) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(status.bytes_total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:32}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(status.repo.to_string());
            Progress::Bar(bar)
        } else {
            Progress::Lines { last_percent: 0, last_line: Instant::now() }
        }
    }

    fn update(&mut self, status: &DownloadStatus) {
        match self {
            Progress::Bar(bar) => {
                bar.set_length(status.bytes_total);
                bar.set_position(status.bytes_done);
            }
            Progress::Lines { last_percent, last_line } => {
                let percent = (status.bytes_done * 100).checked_div(status.bytes_total).unwrap_or(100);
                // A line per 10 % (at most one every half second), and the last one.
                let due = percent >= *last_percent + 10 && last_line.elapsed() >= Duration::from_millis(500);
                if due || (percent == 100 && *last_percent < 100) {
                    let rate = if status.bytes_per_second > 0.0 {
                        format!(", {}/s", human(status.bytes_per_second as u64))
                    } else {
                        String::new()
                    };
                    let eta = status.eta_seconds.map(|s| format!(", {s:.0} s left")).unwrap_or_default();
                    eprintln!(
                        "{percent:>3}%  {} / {}  ({}/{} files{rate}{eta})",
                        human(status.bytes_done),
                        human(status.bytes_total),
                        status.files_done,
                        status.files_total,
                    );
                    *last_percent = percent;
                    *last_line = Instant::now();
                }
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

pub fn pull(args: PullArgs) -> Result<(), LibraryCliError> {
    let model: ModelRef = args.model.parse()?;
    runtime()?.block_on(async {
        let library = library()?;
        let started = library.start(&model.repo, &model.revision).await?;
        eprintln!(
            "pulling {}@{} (commit {}): {} files, {} into {}",
            started.repo,
            started.revision,
            &started.commit[..started.commit.len().min(12)],
            started.files_total,
            human(started.bytes_total),
            library.config().cache_dir.display()
        );
        let mut rx = library.watch(&started.id)?;
        let mut progress = Progress::new(&started);
        let interrupt = tokio::signal::ctrl_c();
        tokio::pin!(interrupt);
        let last = loop {
            tokio::select! {
                changed = rx.changed() => {
                    let status = rx.borrow_and_update().clone();
                    progress.update(&status);
                    if changed.is_err() || status.state.is_final() || status.state == DownloadState::Failed {
                        break status;
                    }
                }
                _ = &mut interrupt => {
                    progress.finish();
                    // Stops the transfers and flushes what arrived into the .incomplete blobs.
                    let last = library.cancel(&started.id).await?;
                    return Err(LibraryCliError::Interrupted {
                        kept: human(last.bytes_done),
                        total: human(last.bytes_total),
                    });
                }
            }
        };
        progress.finish();
        match (last.state, last.error, last.path) {
            (DownloadState::Completed, _, Some(path)) => {
                eprintln!("pulled {} ({})", last.repo, human(last.bytes_total));
                println!("{}", path.display());
                Ok(())
            }
            (_, Some(error), _) => Err(LibraryCliError::Failed(format!(
                "{}\n(files already fetched are kept: run the same command again to resume)",
                error.message
            ))),
            (state, _, _) => Err(LibraryCliError::Failed(format!("the download ended {state:?}"))),
        }
    })
}

#[derive(Args)]
pub struct ModelsArgs {
    /// JSON (one array of repos with snapshots, refs, sizes and whether they run).
    #[arg(long)]
    json: bool,
}

/// Whether the engine runs a snapshot, and its model_type.
fn runs(repo: &CachedRepo) -> (Option<String>, bool) {
    match &repo.servable {
        Some(path) => {
            let arch = mlx_manager_engine::config::architecture(path);
            (arch.model_type, arch.family.is_some())
        }
        None => (None, false),
    }
}

pub fn models(args: ModelsArgs) -> Result<(), LibraryCliError> {
    let caches = hub_dirs();
    let repos = mlx_manager_library::scan_all(&caches);
    if args.json {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            #[serde(flatten)]
            repo: &'a CachedRepo,
            model_type: Option<String>,
            supported: bool,
        }
        let rows: Vec<Row> = repos
            .iter()
            .map(|repo| {
                let (model_type, supported) = runs(repo);
                Row { repo, model_type, supported }
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).map_err(std::io::Error::other)?);
        return Ok(());
    }
    if repos.is_empty() {
        eprintln!("no models in {}", caches.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", "));
        return Ok(());
    }
    let width = repos.iter().map(|r| r.repo.as_str().len()).max().unwrap_or(0).max(5);
    println!("{:<width$}  {:>10}  {:<12}  {:<14}  PATH", "MODEL", "SIZE", "REVISION", "TYPE");
    for repo in &repos {
        let (model_type, supported) = runs(repo);
        let kind = match (model_type, supported) {
            (Some(t), true) => t,
            (Some(t), false) => format!("{t} (no)"),
            (None, _) => "-".into(),
        };
        match repo.servable_snapshot() {
            Some(snapshot) => println!(
                "{:<width$}  {:>10}  {:<12}  {:<14}  {}",
                repo.repo.as_str(),
                human(repo.size_bytes),
                &snapshot.commit[..snapshot.commit.len().min(12)],
                kind,
                snapshot.path.display()
            ),
            None => println!(
                "{:<width$}  {:>10}  {:<12}  {:<14}  incomplete ({} partial): pull it again to resume",
                repo.repo.as_str(),
                human(repo.size_bytes + repo.incomplete_bytes),
                "-",
                "-",
                human(repo.incomplete_bytes)
            ),
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct RmArgs {
    /// ORG/NAME (the whole repo, partial downloads included), or ORG/NAME@REVISION (that
    /// snapshot and the files no other snapshot uses). A running `serve` that has the model
    /// loaded keeps it in memory; `DELETE /admin/library/models/ORG/NAME` on the server refuses
    /// while it is loaded instead.
    model: String,
}

pub fn rm(args: RmArgs) -> Result<(), LibraryCliError> {
    let revision = args.model.contains('@');
    let model: ModelRef = args.model.parse()?;
    runtime()?.block_on(async {
        let library = library()?;
        let deleted = library.delete(&model.repo, revision.then_some(model.revision.as_str())).await?;
        let what = if deleted.removed_repo {
            model.repo.to_string()
        } else {
            format!("{}@{}", model.repo, deleted.snapshots.join(","))
        };
        println!("deleted {what} (freed {})", human(deleted.freed_bytes));
        Ok(())
    })
}

#[derive(Clone, Copy, ValueEnum)]
enum Sort {
    Downloads,
    Recent,
    Likes,
    Trending,
}

#[derive(Args)]
pub struct SearchArgs {
    /// Text to find in repo ids.
    query: Option<String>,
    /// Only this user's or organisation's repos (e.g. mlx-community).
    #[arg(long)]
    author: Option<String>,
    /// Only this library's repos ("any" for all).
    #[arg(long, default_value = "mlx")]
    library: String,
    #[arg(long, value_enum, default_value = "downloads")]
    sort: Sort,
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    limit: u32,
}

pub fn search(args: SearchArgs) -> Result<(), LibraryCliError> {
    let query = SearchQuery {
        text: args.query,
        author: args.author,
        library: Some(if args.library == "any" { String::new() } else { args.library }),
        sort: match args.sort {
            Sort::Downloads => SearchSort::Downloads,
            Sort::Recent => SearchSort::LastModified,
            Sort::Likes => SearchSort::Likes,
            Sort::Trending => SearchSort::Trending,
        },
        limit: args.limit,
    };
    runtime()?.block_on(async {
        let supported = mlx_manager_engine::supported_model_types();
        let results = library()?.search(&query, &|t: &str| supported.contains(&t)).await?;
        let width = results.iter().map(|r| r.id.len()).max().unwrap_or(0).max(5);
        println!("{:<width$}  {:>10}  {:<10}  {:<14}  {:>10}  RUNS", "MODEL", "SIZE", "QUANT", "TYPE", "DOWNLOADS");
        for r in results {
            let quant = match &r.summary.quantization {
                Some(q) => q.bits.map(|b| format!("{b}-bit")).or(q.mode.clone()).unwrap_or_else(|| "yes".into()),
                None => r.summary.dtype.clone().unwrap_or_else(|| "-".into()),
            };
            let runs = match r.summary.supported {
                Some(true) => "yes",
                Some(false) => "no",
                None => "?",
            };
            println!(
                "{:<width$}  {:>10}  {:<10}  {:<14}  {:>10}  {runs}{}{}",
                r.id,
                r.size_bytes.map(human).unwrap_or_else(|| "?".into()),
                quant,
                r.summary.model_type.as_deref().unwrap_or("-"),
                r.downloads.map(|d| d.to_string()).unwrap_or_default(),
                if r.gated { " (gated)" } else { "" },
                if r.installed { " (pulled)" } else { "" },
            );
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(12), "12 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(553_832), "540.9 KiB");
        assert_eq!(human(5 << 30), "5.0 GiB");
    }
}
