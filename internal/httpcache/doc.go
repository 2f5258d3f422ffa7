// Package httpcache holds the HTTP caching rules that Shoal's edges and its
// reference origin apply, as pure functions: no I/O, no clock (a function
// that needs the time takes now), no state. Keeping them here lets each rule
// be tested by table against the section of the RFC it implements, without a
// cluster and without sleeping.
//
// It covers:
//
//   - cache directives (RFC 9111 §5.2) and the targeted fields of RFC 9213:
//     Shoal-Cache-Control, else CDN-Cache-Control, else Cache-Control
//     ([ParseCacheControl], [Policy], [OnlyIfCached]);
//   - storability (RFC 9111 §3, §3.5): [Storable], [StorableStatus],
//     [NotStored], [IsHopByHop] (RFC 9110 §7.6.1),
//     [ReusableWithAuthorization];
//   - freshness and age (RFC 9111 §4.2): [Freshness] (§4.2.1, with the
//     heuristic of §4.2.2) and [Age] (§4.2.3, §5.1);
//   - stale responses (RFC 9111 §4.2.4, RFC 5861): [StaleWhileRevalidate],
//     [StaleIfError];
//   - validation (RFC 9111 §3.2, §4.3): [UpdateHeaders] for a 304,
//     [ModifiedDate] for If-Modified-Since against a stored response;
//   - validators and preconditions (RFC 9110 §8.8.3, §13): [ParseETag],
//     [StrongMatch], [WeakMatch], [CheckPreconditions], [IfRangeHolds],
//     [HasConditionals];
//   - ranges (RFC 9110 §14): [ParseRange], [PlanRanges], [Range],
//     [ParseContentRange], [Multipart] (multipart/byteranges, §14.6);
//   - Vary (RFC 9111 §4.1): [VaryFields], [VariantKey], [VariantFields],
//     [TargetOf], [Selects];
//   - Via (RFC 9110 §7.6.3): [Via].
//
// It imports the standard library only.
package httpcache
