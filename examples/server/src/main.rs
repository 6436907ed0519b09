fn main() {
    eprintln!("eventsync-server: not yet wired");
}
