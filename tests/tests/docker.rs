use testcontainers::{core::WaitFor, runners::AsyncRunner, GenericImage, ImageExt};

#[tokio::test]
async fn probe() {
    let c = GenericImage::new("probe", "1")
        .with_wait_for(WaitFor::message_on_stdout("hello"))
        .with_cmd(["sh", "-c", "echo hello; sleep 30"])
        .start()
        .await
        .unwrap();
    println!("started {}", c.id());
}
