//! `mlx-manager`: run local MLX models from the command line.

mod generate;
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
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
