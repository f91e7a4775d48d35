//! The demo company of the case study: sales and claims funnels for deals, a production smart
//! process linked to deals, three departments with heads, roles and a few deals. Seeded through
//! the same use cases as the API, once (a second start finds it and does nothing).

use serde_json::{Map, Value, json};

use voronka_core::service::catalog::{FunnelPatch, NewField, NewFunnel, NewType};
use voronka_core::service::people::{DepartmentRequest, NewUserRequest, RoleRequest};
use voronka_core::service::{Caller, Core, ServiceResult};
use voronka_model::access::{Access, Permission};
use voronka_model::actor::Actor;
use voronka_model::field::FieldKind;
use voronka_model::funnel::{ManualMoves, Semantics, Stage};
use voronka_model::item::ItemRef;
use voronka_model::item::{MoveRequest, NewItem};
use voronka_model::money::Money;

fn stages(list: &[(&str, &str, Semantics)]) -> Vec<Stage> {
    list.iter().map(|(k, t, s)| Stage { key: (*k).into(), title: (*t).into(), semantics: *s }).collect()
}

fn field(key: &str, title: &str, kind: FieldKind) -> NewField {
    NewField {
        key: key.into(),
        title: title.into(),
        kind,
        required: false,
        multiple: false,
        options: vec![],
        target: None,
    }
}

fn grant(type_key: &str, funnel: Option<&str>, access: Access) -> Permission {
    Permission { type_key: type_key.into(), funnel: funnel.map(Into::into), access }
}

fn fields(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// Seeds the demo company unless the sales funnel already exists.
pub async fn seed(core: &Core) -> ServiceResult<()> {
    let admin = Caller::automation(Actor::System, 0);
    let deal = core.types().get(&admin, "deal").await?;
    if deal.funnel("sales").is_some() {
        tracing::info!("demo data already present");
        return Ok(());
    }
    use Semantics::{Failure, Process, Success};
    core.types()
        .create_funnel(
            &admin,
            "deal",
            NewFunnel {
                key: "sales".into(),
                title: "Sales".into(),
                default: true,
                manual_moves: ManualMoves::Allowed,
                stages: stages(&[
                    ("new", "New request", Process),
                    ("measuring", "Measuring", Process),
                    ("design", "Design and estimate", Process),
                    ("contract", "Contract", Process),
                    ("prepayment", "Prepayment", Process),
                    ("production", "Production", Process),
                    ("installation", "Installation", Process),
                    ("won", "Done", Success),
                    ("defects", "Closed with defects", Failure),
                    ("lost", "Lost", Failure),
                ]),
            },
        )
        .await?;
    core.types()
        .create_funnel(
            &admin,
            "deal",
            NewFunnel {
                key: "claims".into(),
                title: "Claims".into(),
                default: false,
                manual_moves: ManualMoves::Allowed,
                stages: stages(&[
                    ("new", "New claim", Process),
                    ("diagnosis", "Diagnosis", Process),
                    ("fixing", "Fixing", Process),
                    ("done", "Fixed", Success),
                    ("rejected", "Rejected", Failure),
                ]),
            },
        )
        .await?;
    for f in [
        NewField {
            options: vec!["email".into(), "phone".into(), "website".into(), "walk-in".into()],
            ..field("source", "Source", FieldKind::Enum)
        },
        field("address", "Installation address", FieldKind::String),
        field("install_date", "Installation date", FieldKind::Date),
        field("measurer", "Measurer", FieldKind::User),
        field("installer_booking", "Installer booking", FieldKind::Booking),
        field("defects", "Defects to fix", FieldKind::Text),
    ] {
        core.types().create_field(&admin, "deal", f).await?;
    }
    core.types()
        .create(
            &admin,
            NewType {
                key: "production".into(),
                title: "Production".into(),
                parents: vec!["deal".into()],
                has_stages: true,
                has_funnels: false,
                has_amount: false,
                stages: Some(stages(&[
                    ("queued", "Queued", Process),
                    ("cutting", "Cutting", Process),
                    ("assembly", "Assembly", Process),
                    ("painting", "Painting", Process),
                    ("quality-check", "Quality check", Process),
                    ("done", "Done", Success),
                    ("cancelled", "Cancelled", Failure),
                ])),
            },
        )
        .await?;
    core.types()
        .update_funnel(
            &admin,
            "production",
            "default",
            FunnelPatch { title: Some("Production".into()), stages: None, default: None, manual_moves: None },
        )
        .await?;
    for f in [
        field("b_size", "Size", FieldKind::String),
        NewField {
            options: vec!["oak".into(), "ash".into(), "mdf".into()],
            ..field("material", "Material", FieldKind::Enum)
        },
        field("deadline", "Deadline", FieldKind::Date),
    ] {
        core.types().create_field(&admin, "production", f).await?;
    }

    for (key, title, permissions) in [
        (
            "sales",
            "Sales",
            vec![
                grant("deal", None, Access::Read),
                grant("deal", Some("sales"), Access::Write),
                grant("production", None, Access::Read),
                grant("contact", None, Access::Write),
                grant("company", None, Access::Write),
                grant("invoice", None, Access::Write),
            ],
        ),
        (
            "claims",
            "Claims",
            vec![
                grant("deal", None, Access::Read),
                grant("deal", Some("claims"), Access::Write),
                grant("production", None, Access::Read),
                grant("contact", None, Access::Read),
            ],
        ),
        ("production", "Production", vec![grant("production", None, Access::Write), grant("deal", None, Access::Read)]),
    ] {
        core.people()
            .create_role(&admin, RoleRequest { key: Some(key.into()), title: Some(title.into()), permissions })
            .await?;
    }

    let mut people = Vec::new();
    for (department, role, head, staff) in [
        (
            "Sales",
            "sales",
            ("Olga Smirnova", "olga@demo.voronka"),
            vec![("Anna Petrova", "anna@demo.voronka"), ("Dmitry Orlov", "dmitry@demo.voronka")],
        ),
        ("Claims", "claims", ("Pavel Sokolov", "pavel@demo.voronka"), vec![("Irina Volkova", "irina@demo.voronka")]),
        (
            "Production",
            "production",
            ("Ivan Kuznetsov", "ivan@demo.voronka"),
            vec![("Sergey Popov", "sergey@demo.voronka")],
        ),
    ] {
        let d = core
            .people()
            .create_department(&admin, DepartmentRequest { name: Some(department.into()), parent: None, head: None })
            .await?;
        let mut ids = Vec::new();
        for (name, email) in std::iter::once(head).chain(staff) {
            let user = core
                .people()
                .create_user(
                    &admin,
                    NewUserRequest {
                        name: name.into(),
                        email: email.into(),
                        department: Some(d.id),
                        roles: vec![role.into()],
                        admin: false,
                    },
                )
                .await?;
            ids.push(user.id);
        }
        core.people()
            .update_department(&admin, d.id, DepartmentRequest { name: None, parent: None, head: ids.first().copied() })
            .await?;
        people.push(ids);
    }
    let (anna, dmitry) = (people[0][1], people[0][2]);

    let contact = core
        .items()
        .create(
            &admin,
            "contact",
            NewItem { title: "Ivan Ivanov".into(), responsible: Some(anna.into()), ..Default::default() },
        )
        .await?;
    let rub = |v: &str| Some(Money { value: v.into(), currency: "RUB".into() }.to_json());
    let deals = [
        ("Kitchen for Ivanov", "150000.00", anna, "new", json!({"source": "email", "address": "Lenina 1, apt 5"})),
        ("Wardrobe for Petrova", "85000.00", anna, "measuring", json!({"source": "phone"})),
        ("Office furniture for Romashka LLC", "420000.00", dmitry, "contract", json!({"source": "website"})),
        (
            "Bathroom cabinets for Sidorov",
            "64000.00",
            dmitry,
            "production",
            json!({"source": "walk-in", "install_date": "2026-12-15"}),
        ),
    ];
    for (title, amount, responsible, stage, values) in deals {
        let item = core
            .items()
            .create(
                &admin,
                "deal",
                NewItem {
                    title: title.into(),
                    funnel: Some("sales".into()),
                    amount: rub(amount),
                    responsible: Some(responsible.into()),
                    contact: Some(contact.id),
                    fields: fields(values),
                    ..Default::default()
                },
            )
            .await?;
        if stage != "new" {
            core.items()
                .move_to(&admin, "deal", item.id, MoveRequest { stage: stage.into(), funnel: None }, None)
                .await?;
        }
        if stage == "production" {
            core.items()
                .create(
                    &admin,
                    "production",
                    NewItem {
                        title: format!("Production: {title}"),
                        responsible: Some(people[2][0].into()),
                        parents: vec![ItemRef { type_key: "deal".into(), id: item.id }],
                        fields: fields(json!({"b_size": "1200x600", "material": "oak", "deadline": "2026-12-10"})),
                        ..Default::default()
                    },
                )
                .await?;
        }
    }
    tracing::info!("demo data seeded");
    Ok(())
}
