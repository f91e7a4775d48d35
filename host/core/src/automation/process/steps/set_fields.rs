//! Set fields: sets custom fields of the item, as a `PATCH` of its `fields` would (`null`
//! clears one), with the process as the author of the change.

use serde_json::{Map, Value, json};
use voronka_model::item::ItemPatch;
use voronka_store::Tx;

use crate::automation::process::{Next, Run};
use crate::service::ServiceResult;

impl Run<'_> {
    /// Updates the item's fields and goes on with the item as it now is.
    pub(super) async fn set_fields(
        &mut self,
        tx: &mut Tx,
        id: &str,
        pc: usize,
        fields: &Map<String, Value>,
    ) -> ServiceResult<Next> {
        let patch = ItemPatch { fields: Some(fields.clone()), ..ItemPatch::default() };
        self.item =
            self.core.items().update_in(tx, &self.caller, &self.item.type_key, self.item.id, patch, None).await?;
        self.log(tx, id, "Fields set", json!({ "fields": fields }));
        Ok(Next::Goto(pc + 1))
    }
}
