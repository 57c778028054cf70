//! w
fn main() {
    println!("hi");
}
