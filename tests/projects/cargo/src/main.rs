fn main() {
    println!("shape-cli");
}
