// Package juhesim is a simulator of the juhe "two-sell" API (全网二次放号查询),
// faithful to the provider's document, for tests and local development.
//
// # Endpoints
//
// A [Sim] is an [http.Handler] serving the provider's two endpoints:
//
//   - /twoSellTel/query with key, mobile (11 digits) and date (yyyymmdd);
//   - /twoSellTel/queryEncry with the mobile protected in one of five modes.
//
// Both accept GET (parameters in the query string) and POST (parameters in
// an application/x-www-form-urlencoded body only; a POST with another content
// type has no parameters, so it is answered 10001 for the missing key). Any
// other method is answered HTTP 405, any other path HTTP 404. Replies are
// shaped exactly like the document's, always with HTTP 200 and
// Content-Type application/json;charset=utf-8:
//
//	{"reason":"成功","result":{"res":2,"orderid":"JH327201911081525223306"},"error_code":0}
//	{"reason":"参数异常","result":null,"error_code":232702}
//
// The reason of every code is the document's Chinese text (see [Reason]).
//
// # What a request goes through, in order
//
//  1. Faults.Latency and Faults.Jitter; a client that gives up while waiting
//     gets nothing and the handler returns at once.
//  2. Faults.Outage, if any.
//  3. Faults.IPQPS: 10011 past the limit of the remote IP.
//  4. The key: missing or not one of Config.Keys: 10001.
//  5. Faults.QPS: 10012 past the limit across all callers.
//  6. Faults.ErrorRates: the injected code, if one is drawn.
//  7. mobile or date missing, or date not a calendar day written yyyymmdd:
//     232702.
//  8. On /query, a mobile not matching ^1[3-9]\d{9}$: 232702. On
//     /queryEncry, a mobile that no mode explains: 232702 (see below).
//  9. The rule below.
//
// On /queryEncry the mode is told from the shape of mobile, as the provider
// does (there is no mode parameter):
//
//   - 11 digits: 232702, plaintext on the encrypted endpoint;
//   - 32 lowercase hex: md5; 64 lowercase hex: sha256;
//   - otherwise standard base64 that decrypts (AES/ECB/PKCS5, key
//     juhe.AESKey(Config.OpenID)) to a valid mobile: aes; to 32 lowercase
//     hex: md5+aes; to 64 lowercase hex: sha256+aes;
//   - anything else (bad base64, bad padding, a wrong openid, uppercase hex):
//     232702. Base64's '+' must be URL-encoded by the client: a '+' sent raw
//     reads as a space and fails, as it would at the provider.
//
// A digest cannot be reversed, so the simulator keeps an index of the digests
// of the numbers it knows: [Population](Config.Population) (10000 by default,
// indexed by [New]), the numbers given to [Sim.Register], and every number it
// has seen in plaintext or AES form. A digest of a number it does not know is
// answered 232703 (no record), as the provider answers for a number it has no
// data on. The index only grows; it is meant for tests, not for months of
// traffic.
//
// # The rule
//
// Answers are derived from the number and the date only, so that tests can
// predict them with [Expect] and [ActivationDate]. With xy the last two
// digits of the mobile (0–99):
//
//   - xy 00–04: 232703, no record;
//   - xy 05–09: res 3, no activation date;
//   - otherwise the activation date is A = 2015-01-01 plus (mobile[3:7] as an
//     integer, mod 3650) days, and for the query date D res is 1 (re-issued)
//     if A is after D, else 2 (A == D is res 2).
//
// A successful answer carries an orderid in the provider's format: "JH327",
// the simulator's clock (Config.Now) in China time (+08:00) as
// yyyyMMddHHmmss, and a 4-digit counter modulo 10000: 23 characters.
//
// # Faults
//
// [Faults] make the simulator misbehave, at construction (Config.Faults) or at
// run time ([Sim.SetFaults], or PUT /sim/faults): latency and jitter, an
// injected error rate per code (every code of the document is reachable this
// way, and any other code too, to test a client's handling of unknown codes),
// outages (HTTP 503, a hang, a non-JSON body, a reset connection), and request
// limits, across all callers (10012) and per remote IP (10011).
// Faults.AfterRequests delays all of them but the latency, so that a test can
// say "answer 30 requests normally, then 10001 for ever". Random draws use a
// PRNG seeded by Config.Seed, and the limiters read Config.Now: with a fixed
// seed and a fixed clock, a sequence of requests gets the same answers on
// every run.
//
// # Admin endpoints
//
// The same handler serves, for tests, development and scripts:
//
//	GET /sim/faults   the current Faults as JSON
//	PUT /sim/faults   replace them with the JSON body, e.g.
//	                  {"latency":"50ms","error_rates":{"232701":0.1},"outage":"","qps":20}
//	GET /sim/stats    the counters of Sim.Stats as JSON
//
// They need no key: the simulator is never exposed beyond a test or a
// developer's machine.
//
// # Serving
//
// A Sim serves in any http.Server, an httptest.Server for instance.
// [Sim.NewServer] returns a [Server], which "twosell sim" uses: it answers
// the provider's queries through a hand-written HTTP/1.1 fast path, in the
// bytes net/http writes for them but for less CPU, and hands every other
// request, connection and all, to net/http.
package juhesim
