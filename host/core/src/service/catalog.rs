//! Entity types, custom fields and funnels: the [`super::Types`] aggregate (`core.types()`). The
//! catalog they make up is read through [`super::Core::catalog`], cached per configuration
//! generation.

use serde::Deserialize;

use super::{Caller, ServiceError, ServiceResult, Types, require_admin};
use voronka_model::access::Access;
use voronka_model::entity_type::{BUILTIN_TYPES, EntityType, TypeSchema};
use voronka_model::field::{FieldDef, FieldKind};
use voronka_model::funnel::{Funnel, ManualMoves, Stage, default_stages, validate_stages};
use voronka_model::{FieldError, is_valid_key};
use voronka_store::catalog as repo;

/// Keys an item already has, which custom fields may not take.
const RESERVED_FIELD_KEYS: [&str; 16] = [
    "id",
    "type",
    "funnel",
    "stage",
    "title",
    "amount",
    "responsible",
    "contact",
    "company",
    "parents",
    "fields",
    "version",
    "created_by",
    "created_at",
    "updated_by",
    "updated_at",
];

/// `POST /types` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewType {
    /// Key, e.g. `production`: a lower-case letter, then lower-case letters, digits, `-` or `_`,
    /// at most 64 characters; not a built-in type's or an existing type's key.
    pub key: String,
    /// Display title, 1 to 200 characters (trimmed); the default funnel gets it too.
    pub title: String,
    /// Types whose items may be parents of this type's items.
    #[serde(default)]
    pub parents: Vec<String>,
    /// Items move through stages (default true).
    #[serde(default = "super::defaults::yes")]
    pub has_stages: bool,
    /// More than one funnel may be created (default true).
    #[serde(default = "super::defaults::yes")]
    pub has_funnels: bool,
    /// Items carry an amount (default false).
    #[serde(default)]
    pub has_amount: bool,
    /// Stages of the default funnel (default: new, in-progress, done, failed).
    #[serde(default)]
    pub stages: Option<Vec<Stage>>,
}

/// `PATCH /types/{type}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TypePatch {
    /// New display title, 1 to 200 characters (trimmed). Absent or `null` keeps it.
    pub title: Option<String>,
    /// New list of allowed parent types.
    pub parents: Option<Vec<String>>,
}

/// `POST /types/{type}/fields` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewField {
    /// Key, unique in the type: a lower-case letter, then lower-case letters, digits, `-` or `_`,
    /// at most 64 characters. Built-in item properties (`title`, `stage`, ...) are refused.
    pub key: String,
    /// Display title, 1 to 200 characters (trimmed).
    pub title: String,
    /// `string`, `text`, `number`, `money`, `date`, `datetime`, `bool`, `enum`, `user`,
    /// `item-link`, `file` or `booking`.
    pub kind: FieldKind,
    /// A value must be given when an item is created and can never be cleared (default `false`).
    #[serde(default)]
    pub required: bool,
    /// The value is a list of at most 1000 values of the kind (default `false`).
    #[serde(default)]
    pub multiple: bool,
    /// Allowed values of an `enum` field: at least one, each non-empty and unique. Other kinds
    /// take none.
    #[serde(default)]
    pub options: Vec<String>,
    /// Key of the existing type an `item-link` field points at: required for `item-link`,
    /// refused for other kinds.
    #[serde(default)]
    pub target: Option<String>,
}

/// `POST /types/{type}/funnels` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFunnel {
    /// Key, unique in the type: a lower-case letter, then lower-case letters, digits, `-` or `_`,
    /// at most 64 characters.
    pub key: String,
    /// Display title, 1 to 200 characters (trimmed).
    pub title: String,
    /// The stages in order, 1 to 100 with unique keys: process stages first (the first stage is
    /// one), then success and failure stages.
    pub stages: Vec<Stage>,
    /// Make it the type's default funnel.
    #[serde(default)]
    pub default: bool,
    /// Who may move its items by hand: `allowed` (the default: anyone with write access),
    /// `admins` (system administrators) or `none` (only robots, triggers and processes).
    #[serde(default)]
    pub manual_moves: ManualMoves,
}

/// `PATCH /types/{type}/funnels/{funnel}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunnelPatch {
    /// New display title, 1 to 200 characters (trimmed). Absent or `null` keeps it.
    pub title: Option<String>,
    /// New stage list; stages that still hold items cannot be removed.
    pub stages: Option<Vec<Stage>>,
    /// Make it the default funnel (`false` is ignored: choose another default instead).
    pub default: Option<bool>,
    /// Who may move its items by hand: `allowed`, `admins` or `none`. Absent keeps it.
    pub manual_moves: Option<ManualMoves>,
}

fn check_title(errors: &mut Vec<FieldError>, field: &str, title: &str) {
    if title.trim().is_empty() || title.chars().count() > 200 {
        errors.push(FieldError::new(field, "a title of 1 to 200 characters is required"));
    }
}

fn check_parents(errors: &mut Vec<FieldError>, catalog: &repo::Catalog, parents: &[String], own: &str) {
    for (i, parent) in parents.iter().enumerate() {
        if parent != own && !catalog.contains_key(parent) {
            errors.push(FieldError::new(format!("parents[{i}]"), format!("unknown type `{parent}`")));
        }
    }
}

fn into_result(errors: Vec<FieldError>) -> ServiceResult<()> {
    if errors.is_empty() { Ok(()) } else { Err(ServiceError::Validation(errors)) }
}

impl Types<'_> {
    /// Types the caller can see (any access in any funnel).
    pub async fn list(&self, caller: &Caller) -> ServiceResult<Vec<TypeSchema>> {
        let catalog = self.core.catalog().await?;
        Ok(catalog.values().filter(|s| caller.principal.best_access(&s.def.key) >= Access::Read).cloned().collect())
    }

    /// A type the caller can see, with fields and funnels.
    pub async fn get(&self, caller: &Caller, key: &str) -> ServiceResult<TypeSchema> {
        let catalog = self.core.catalog().await?;
        match catalog.get(key) {
            Some(s) if caller.principal.best_access(key) >= Access::Read => Ok(s.clone()),
            _ => Err(ServiceError::NotFound(format!("no entity type `{key}`"))),
        }
    }

    /// Creates a custom type ("smart process") with its default funnel. Administrators only.
    pub async fn create(&self, caller: &Caller, input: NewType) -> ServiceResult<TypeSchema> {
        require_admin(caller)?;
        let catalog = self.core.catalog().await?;
        let mut errors = Vec::new();
        if !is_valid_key(&input.key) {
            errors.push(FieldError::new(
                "key",
                "a key is lower-case letters, digits, `-` or `_`, starting with a letter",
            ));
        }
        check_title(&mut errors, "title", &input.title);
        check_parents(&mut errors, &catalog, &input.parents, &input.key);
        let stages = input.stages.clone().unwrap_or_else(default_stages);
        if input.has_stages {
            if let Err(e) = validate_stages(&stages) {
                errors.extend(e);
            }
        } else if input.stages.is_some() {
            errors.push(FieldError::new("stages", "a type without stages takes no stages"));
        }
        into_result(errors)?;
        let def = EntityType {
            key: input.key.clone(),
            title: input.title.trim().to_string(),
            builtin: false,
            has_stages: input.has_stages,
            has_funnels: input.has_stages && input.has_funnels,
            has_amount: input.has_amount,
            parents: input.parents,
        };
        let mut tx = self.core.begin_config().await?;
        if BUILTIN_TYPES.contains(&def.key.as_str()) || !repo::insert_type(&mut tx, &def).await? {
            return Err(ServiceError::Conflict(format!("entity type `{}` already exists", def.key)));
        }
        let mut funnels = Vec::new();
        if def.has_stages {
            let funnel = Funnel {
                key: "default".into(),
                title: def.title.clone(),
                is_default: true,
                stages,
                manual_moves: ManualMoves::Allowed,
            };
            repo::insert_funnel(&mut tx, &def.key, &funnel).await?;
            funnels.push(funnel);
        }
        self.core.commit_config(tx).await?;
        Ok(TypeSchema { def, fields: Vec::new(), funnels })
    }

    /// Changes a type's title or allowed parents. Needs `admin` access to the type.
    pub async fn update(&self, caller: &Caller, key: &str, patch: TypePatch) -> ServiceResult<TypeSchema> {
        let mut schema = self.for_admin(caller, key).await?;
        let catalog = self.core.catalog().await?;
        let mut errors = Vec::new();
        if let Some(title) = &patch.title {
            check_title(&mut errors, "title", title);
            schema.def.title = title.trim().to_string();
        }
        if let Some(parents) = patch.parents {
            check_parents(&mut errors, &catalog, &parents, key);
            schema.def.parents = parents;
        }
        into_result(errors)?;
        let mut tx = self.core.begin_config().await?;
        repo::update_type(&mut tx, &schema.def).await?;
        self.core.commit_config(tx).await?;
        Ok(schema)
    }

    async fn for_admin(&self, caller: &Caller, key: &str) -> ServiceResult<TypeSchema> {
        let schema = self.get(caller, key).await?;
        if caller.principal.access(key, None) < Access::Admin {
            return Err(ServiceError::Forbidden(format!("changing type `{key}` needs admin access to it")));
        }
        Ok(schema)
    }

    /// Adds a custom field. Needs `admin` access to the type.
    pub async fn create_field(&self, caller: &Caller, type_key: &str, input: NewField) -> ServiceResult<FieldDef> {
        let schema = self.for_admin(caller, type_key).await?;
        let catalog = self.core.catalog().await?;
        let mut errors = Vec::new();
        if !is_valid_key(&input.key) {
            errors.push(FieldError::new(
                "key",
                "a key is lower-case letters, digits, `-` or `_`, starting with a letter",
            ));
        } else if RESERVED_FIELD_KEYS.contains(&input.key.as_str()) {
            errors.push(FieldError::new("key", format!("`{}` is a built-in property of items", input.key)));
        }
        check_title(&mut errors, "title", &input.title);
        match input.kind {
            FieldKind::Enum => {
                if input.options.is_empty() {
                    errors.push(FieldError::new("options", "an enum field needs at least one option"));
                }
                for (i, o) in input.options.iter().enumerate() {
                    if o.trim().is_empty() || input.options[..i].contains(o) {
                        errors.push(FieldError::new(format!("options[{i}]"), "options must be non-empty and unique"));
                    }
                }
            }
            _ if !input.options.is_empty() => {
                errors.push(FieldError::new("options", "only enum fields take options"));
            }
            _ => {}
        }
        match (&input.kind, &input.target) {
            (FieldKind::ItemLink, Some(t)) if !catalog.contains_key(t) => {
                errors.push(FieldError::new("target", format!("unknown type `{t}`")));
            }
            (FieldKind::ItemLink, None) => {
                errors.push(FieldError::new("target", "an item-link field needs a target type"))
            }
            (FieldKind::ItemLink, Some(_)) => {}
            (_, Some(_)) => errors.push(FieldError::new("target", "only item-link fields take a target")),
            (_, None) => {}
        }
        into_result(errors)?;
        let field = FieldDef {
            key: input.key,
            title: input.title.trim().to_string(),
            kind: input.kind,
            required: input.required,
            multiple: input.multiple,
            options: input.options,
            target: input.target,
        };
        let mut tx = self.core.begin_config().await?;
        if !repo::insert_field(&mut tx, &schema.def.key, &field).await? {
            return Err(ServiceError::Conflict(format!("field `{}` already exists on `{type_key}`", field.key)));
        }
        self.core.commit_config(tx).await?;
        Ok(field)
    }

    /// Adds a funnel to a type with funnels. Needs `admin` access to the type.
    pub async fn create_funnel(&self, caller: &Caller, type_key: &str, input: NewFunnel) -> ServiceResult<Funnel> {
        let schema = self.for_admin(caller, type_key).await?;
        if !schema.def.has_funnels {
            let why = if schema.def.has_stages { "has a single funnel" } else { "has no stages" };
            return Err(ServiceError::invalid("key", format!("type `{type_key}` {why}")));
        }
        let mut errors = Vec::new();
        if !is_valid_key(&input.key) {
            errors.push(FieldError::new(
                "key",
                "a key is lower-case letters, digits, `-` or `_`, starting with a letter",
            ));
        }
        check_title(&mut errors, "title", &input.title);
        if let Err(e) = validate_stages(&input.stages) {
            errors.extend(e);
        }
        into_result(errors)?;
        let funnel = Funnel {
            key: input.key,
            title: input.title.trim().to_string(),
            is_default: input.default,
            stages: input.stages,
            manual_moves: input.manual_moves,
        };
        let mut tx = self.core.begin_config().await?;
        if !repo::insert_funnel(&mut tx, type_key, &funnel).await? {
            return Err(ServiceError::Conflict(format!("funnel `{}` already exists on `{type_key}`", funnel.key)));
        }
        if funnel.is_default {
            repo::update_funnel(&mut tx, type_key, &funnel).await?;
        }
        self.core.commit_config(tx).await?;
        Ok(funnel)
    }

    /// A funnel of a type the caller can see.
    pub async fn get_funnel(&self, caller: &Caller, type_key: &str, key: &str) -> ServiceResult<Funnel> {
        let schema = self.get(caller, type_key).await?;
        schema
            .funnel(key)
            .cloned()
            .ok_or_else(|| ServiceError::NotFound(format!("no funnel `{key}` in type `{type_key}`")))
    }

    /// Changes a funnel's title, stages or default flag. Needs `admin` access to the type.
    pub async fn update_funnel(
        &self,
        caller: &Caller,
        type_key: &str,
        key: &str,
        patch: FunnelPatch,
    ) -> ServiceResult<Funnel> {
        let schema = self.for_admin(caller, type_key).await?;
        let mut funnel = schema
            .funnel(key)
            .cloned()
            .ok_or_else(|| ServiceError::NotFound(format!("no funnel `{key}` in type `{type_key}`")))?;
        let mut errors = Vec::new();
        if let Some(title) = &patch.title {
            check_title(&mut errors, "title", title);
            funnel.title = title.trim().to_string();
        }
        if patch.default == Some(true) {
            funnel.is_default = true;
        }
        if let Some(manual_moves) = patch.manual_moves {
            funnel.manual_moves = manual_moves;
        }
        let removed: Vec<Stage> = match &patch.stages {
            Some(stages) => {
                if let Err(e) = validate_stages(stages) {
                    errors.extend(e);
                }
                let kept = funnel.stages.iter().filter(|old| !stages.iter().any(|s| s.key == old.key));
                let removed = kept.cloned().collect();
                funnel.stages = stages.clone();
                removed
            }
            None => Vec::new(),
        };
        into_result(errors)?;
        let mut tx = self.core.begin_config().await?;
        for stage in &removed {
            let n = repo::count_in_stage(&mut tx, type_key, key, &stage.key).await?;
            if n > 0 {
                return Err(ServiceError::Conflict(format!(
                    "stage `{}` still holds {n} item(s); move them before removing the stage",
                    stage.key
                )));
            }
        }
        repo::update_funnel(&mut tx, type_key, &funnel).await?;
        self.core.commit_config(tx).await?;
        Ok(funnel)
    }

    /// Checks that the stage exists and the caller has `need` access to the type in its funnel.
    pub(super) async fn check_stage(
        &self,
        caller: &Caller,
        type_key: &str,
        funnel: &str,
        stage: &str,
        need: Access,
    ) -> ServiceResult<()> {
        let schema = self.get(caller, type_key).await?;
        let funnel_def = schema
            .funnel(funnel)
            .ok_or_else(|| ServiceError::NotFound(format!("no funnel `{funnel}` in type `{type_key}`")))?;
        if funnel_def.stage(stage).is_none() {
            return Err(ServiceError::NotFound(format!("no stage `{stage}` in funnel `{funnel}`")));
        }
        if caller.principal.access(type_key, Some(funnel)) < need {
            return Err(ServiceError::Forbidden(format!(
                "{} access to `{type_key}` in funnel `{funnel}` is required",
                need.as_str()
            )));
        }
        Ok(())
    }
}
