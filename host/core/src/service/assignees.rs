//! Who does a piece of work: a named user, the holders of a role, or a person related to the
//! item (its responsible, or the head of the responsible's department — the case's "head of
//! sales"). Tasks, robots and business-process steps all resolve assignees here.
//!
//! Part of the [`super::People`] aggregate (`core.people()`).

use super::{People, ServiceError, ServiceResult};
use voronka_model::assignee::{Assignee, Relation};
use voronka_model::item::Item;

impl People<'_> {
    /// The active users an assignee names, for `item` (needed by relations). Fails with a
    /// validation error naming `field` when it names nobody.
    pub async fn resolve_assignee(
        &self,
        field: &str,
        assignee: &Assignee,
        item: Option<&Item>,
    ) -> ServiceResult<Vec<i64>> {
        let reader = self.core.store.reader();
        let nobody = |why: String| ServiceError::invalid(field, why);
        match assignee {
            Assignee::User { user } => match voronka_store::people::get_user(reader, *user).await? {
                Some(u) if u.active => Ok(vec![u.id]),
                Some(_) => Err(nobody(format!("user {user} is inactive"))),
                None => Err(nobody(format!("no user {user}"))),
            },
            Assignee::Role { role } => {
                let users = voronka_store::people::users_with_role(reader, role).await?;
                if users.is_empty() { Err(nobody(format!("no active user has the role `{role}`"))) } else { Ok(users) }
            }
            Assignee::Relation { relation } => {
                let item = item.ok_or_else(|| nobody("a relation needs an item to relate to".into()))?;
                let responsible =
                    item.responsible.ok_or_else(|| nobody(format!("item {} has no responsible user", item.id)))?;
                match relation {
                    Relation::Responsible => Ok(vec![responsible]),
                    Relation::DepartmentHead => {
                        self.department_head_of(responsible).await?.map(|h| vec![h]).ok_or_else(|| {
                            nobody(format!("the responsible user {responsible} has no department head above them"))
                        })
                    }
                }
            }
        }
    }

    /// One user for a single piece of work: the only one named, or the least busy of several.
    pub async fn resolve_one_assignee(
        &self,
        field: &str,
        assignee: &Assignee,
        item: Option<&Item>,
    ) -> ServiceResult<i64> {
        let users = self.resolve_assignee(field, assignee, item).await?;
        if let [one] = users.as_slice() {
            return Ok(*one);
        }
        let mut conn = self.core.store.reader().clone();
        voronka_store::tasks::least_busy(&mut conn, &users)
            .await?
            .ok_or_else(|| ServiceError::invalid(field, "nobody active to assign"))
    }

    /// The head of `user`'s department; when `user` heads it, the head of the nearest
    /// department above with another head.
    async fn department_head_of(&self, user: i64) -> ServiceResult<Option<i64>> {
        let reader = self.core.store.reader();
        let Some(department) = voronka_store::people::get_user(reader, user).await?.and_then(|u| u.department) else {
            return Ok(None);
        };
        let departments = voronka_store::people::list_departments(reader).await?;
        let mut current = Some(department);
        // The tree has no cycles, but a bound keeps a corrupt one from looping.
        for _ in 0..departments.len() {
            let Some(d) = current.and_then(|id| departments.iter().find(|d| d.id == id)) else { break };
            match d.head {
                Some(head) if head != user => return Ok(Some(head)),
                _ => current = d.parent,
            }
        }
        Ok(None)
    }
}
