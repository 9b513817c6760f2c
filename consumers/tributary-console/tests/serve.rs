#![allow(clippy::unwrap_used)] // a test stops at its first surprise
//! The console is served from the binary: the app when it was built, else
//! the page saying how to build it; its files with their types.

async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, tributary_console::router::<()>())
            .await
            .unwrap()
    });
    url
}

#[tokio::test]
async fn serves_the_app_or_says_how_to_build_it() {
    let url = serve().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for from in ["/", "/console"] {
        let resp = client.get(format!("{url}{from}")).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{from}");
        assert_eq!(resp.headers()["location"], "/console/");
    }
    let resp = client.get(format!("{url}/console/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = resp.text().await.unwrap();
    if tributary_console::built() {
        assert!(page.contains("<div id=\"root\">"), "{page}");
        // Every file the page names is served with its type.
        let script = page
            .split("src=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap();
        let resp = client.get(format!("{url}{script}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{script}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
    } else {
        assert!(page.contains("npm run build"), "{page}");
    }
    let resp = client
        .get(format!("{url}/console/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
