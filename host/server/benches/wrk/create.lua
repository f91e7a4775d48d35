-- POST /api/v1/items/deal with a small deal (token of `VORONKA_ADMIN_TOKEN=vk_bench_admin_token_0123456789abcdef`).
wrk.method = "POST"
wrk.body = '{"title":"Bench deal","amount":{"value":"1500.00","currency":"RUB"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer vk_bench_admin_token_0123456789abcdef"
