//! The `tessera` binary: parses the command line and runs one command (each in
//! its module under `commands/`).

mod commands;

use clap::Parser;
use tessera::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Preview(a) => commands::preview::run(*a),
        Command::Layouts(a) => commands::layouts::run(a),
        Command::Devroom(a) => commands::devroom::run(a),
        Command::Record(a) => commands::record::run(*a),
        Command::Demo(a) => commands::demo::run(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::BenchRender(a) => commands::bench_render::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
