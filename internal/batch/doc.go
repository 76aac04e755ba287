// Package batch groups concurrent inference requests for one model into
// batches: it queues requests, decides when to run which of them as one
// backend call, concatenates their inputs on dimension 0, and splits the
// outputs back, so that each request gets, bit for bit, what it would have
// got alone.
//
// The decision is a pure function (Decide, with Admit for admission) of
// the queue, the running batches, a learned latency model and the time
// now: no clock, no goroutines, no I/O. Batcher is the runtime around it:
// it owns the queue, a timer and the executions.
//
// The policy is deadline-aware. A batch is dispatched when an execution
// slot is free and either it is full, or it has reached the largest
// preferred size, or its oldest request has waited MaxQueueDelay, or
// waiting any longer could make one of its requests miss its deadline
// (estimated with the latency model, which the Batcher fits to the
// measured execution times). Without deadlines it behaves like Triton's
// max_queue_delay. A request is admitted only if the queue has room, its
// batch is predicted to start within MaxQueueDelay (or in the next round of
// executions) and to finish before its deadline; otherwise it is rejected at
// once, never after waiting. So no admitted request waits longer than
// MaxQueueDelay plus one batch execution, unless a request of a higher
// priority, arriving later, takes its place.
//
// At low load the hand-off costs nothing: a request that the policy would
// dispatch at once and alone runs on its caller's goroutine.
//
// The package knows nothing of HTTP, gRPC or model formats; package serve
// wires it to a model that declares backend.Batching.
package batch
