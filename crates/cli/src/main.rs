//! `mlx-manager`: run local MLX models from the command line.

mod generate;
mod library;
mod serve;
mod tiny;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mlx-manager", version, about = "Run local MLX language models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve local models on an OpenAI- and Anthropic-compatible HTTP endpoint.
    Serve(serve::ServeArgs),
    /// Generate text from a local model folder.
    Generate(generate::GenerateArgs),
    /// Write a tiny random-weight model folder (for tests, benchmarks and the default model).
    MakeTinyModel(tiny::TinyArgs),
    /// Download a model from the Hugging Face Hub into the Hugging Face cache (resumable:
    /// Ctrl-C or a lost connection keeps what arrived; run it again to go on).
    Pull(library::PullArgs),
    /// List the models in the Hugging Face cache, with their sizes.
    Models(library::ModelsArgs),
    /// Delete a model from the Hugging Face cache.
    Rm(library::RmArgs),
    /// Search the Hugging Face Hub for models (size, quantization, and whether they run here).
    Search(library::SearchArgs),
}

fn main() -> std::process::ExitCode {
    // Before any thread starts (it may set OPENBLAS_CORETYPE for OpenBLAS's initialiser).
    mlx_manager_engine::cpu_kernels::select();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        mlx_manager_telemetry::terminal();
    }
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Serve(args) => serve::run(args).map_err(Into::into),
        Command::Generate(args) => generate::run(args).map_err(Into::into),
        Command::MakeTinyModel(args) => tiny::run(args).map_err(Into::into),
        Command::Pull(args) => library::pull(args).map_err(Into::into),
        Command::Models(args) => library::models(args).map_err(Into::into),
        Command::Rm(args) => library::rm(args).map_err(Into::into),
        Command::Search(args) => library::search(args).map_err(Into::into),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            // Ctrl-C: the shell's convention for a command ended by SIGINT.
            match e.downcast_ref::<library::LibraryCliError>() {
                Some(library::LibraryCliError::Interrupted { .. }) => std::process::ExitCode::from(130),
                _ => std::process::ExitCode::FAILURE,
            }
        }
    }
}
