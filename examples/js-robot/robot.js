// Example Voronka robot in JavaScript: writes a greeting for the item's responsible user into a
// text field and notes it on the timeline. Config: {"field": "greeting"}.
// Errors are thrown as strings or objects with code/message (QuickJS: throw plain values).
import { updateFields } from "voronka:plugin/items@0.1.0";
import { addEntry } from "voronka:plugin/timeline@0.1.0";

export function run(ctx) {
  const config = JSON.parse(ctx.config || "{}");
  const field = config.field || "greeting";
  const item = ctx.item;
  const text = `Hello from JavaScript, ${item.title}!`;
  updateFields(item.typeKey, item.id, JSON.stringify({ [field]: text }));
  addEntry(item.typeKey, item.id, `JS robot greeted ${item.title}`);
  return { message: text };
}
