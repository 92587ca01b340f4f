//! The real Prolific, opt-in: with `CROWDCORE_PROLIFIC_LIVE=1`, `PROLIFIC_API_TOKEN` and
//! `PROLIFIC_PROJECT` (a project id of the token's workspace) set, creates an unpublished
//! draft study (Prolific has no sandbox; a draft costs nothing), reads it back, finds it in
//! the project's listing and deletes it. Skipped, with a note, otherwise.

use crowdcore_prolific::model::{CodeAction, CompletionCode, NewStudy, StudyStatus};
use crowdcore_prolific::{ClientConfig, ProlificClient};

#[tokio::test]
async fn a_draft_study_round_trip() {
    if std::env::var("CROWDCORE_PROLIFIC_LIVE").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set CROWDCORE_PROLIFIC_LIVE=1, PROLIFIC_API_TOKEN and PROLIFIC_PROJECT to run against Prolific"
        );
        return;
    }
    let project = std::env::var("PROLIFIC_PROJECT").expect("PROLIFIC_PROJECT: a project id");
    let client =
        ProlificClient::new(ClientConfig::production_from_env().expect("token")).expect("client");
    let name = format!(
        "crowdcore-live-test:{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let draft = NewStudy {
        name: "crowdcore live test (draft, never published)".into(),
        internal_name: name.clone(),
        description: "A draft made by crowdcore's opt-in test; it is deleted at once.".into(),
        external_study_url: "https://example.org/work?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}".into(),
        prolific_id_option: "url_parameters".into(),
        completion_codes: vec![CompletionCode {
            code: "CCLIVE01".into(),
            code_type: "COMPLETED".into(),
            actions: vec![CodeAction { action: "MANUALLY_REVIEW".into() }],
        }],
        total_available_places: 1,
        estimated_completion_time: 1,
        maximum_allowed_time: 10,
        reward: 10,
        device_compatibility: vec!["desktop".into()],
        filters: Vec::new(),
        naivety_distribution_rate: 0.0,
        project: project.clone(),
    };
    let created = client.create_study(&draft).await.expect("draft created");
    let read = client.get_study(&created.id).await.expect("read back");
    assert_eq!(read.status, StudyStatus::Unpublished);
    assert_eq!(read.internal_name.as_deref(), Some(name.as_str()));
    assert_eq!(read.total_available_places, 1);
    let listed = client.list_project_studies(&project).await.expect("listed");
    assert!(listed.iter().any(|s| s.id == created.id));
    client.delete_study(&created.id).await.expect("deleted");
}
