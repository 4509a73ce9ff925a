fn main() -> std::process::ExitCode {
    tasjil::cli::main()
}
