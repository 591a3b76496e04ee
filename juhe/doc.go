// Package juhe is a client for the juhe "two-sell" API (全网二次放号查询): has a
// Chinese mobile number been recycled and re-issued to a new holder since a
// given date?
//
// The client speaks both endpoints (/twoSellTel/query and
// /twoSellTel/queryEncry), GET and POST, and every way the provider accepts
// the number: plain, md5, sha256, aes, md5+aes and sha256+aes. Every provider
// answer is classified once (see [Class]); transient faults are retried with
// backoff, and a circuit breaker stops calling a provider that is failing.
// Only provider faults count against the breaker: a "no record" answer, a
// rejected parameter or the caller's own cancellation do not.
//
// The account key and openid never appear in an error, a log line or a span:
// they are attached to requests below the tracing layer, and every error
// string passes through one redactor.
//
// The package knows nothing of Kafka. The simulator in juhe/juhesim serves
// the same API for tests and local development.
package juhe
