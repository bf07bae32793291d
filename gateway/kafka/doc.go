// Package kafka is sendcore's Kafka adapter: the requests Source (a kafka-go consumer
// group with per-partition contiguous commits), the events and DLQ writers, the opt-out
// topic, and the embedded Kafka-protocol broker (franz-go's kfake) that `demo`, `bench`,
// tests, and `run` without brokers use.
//
// Place in the pipeline: gateway/kafka ──> dispatch. It speaks Kafka and nothing else.
package kafka
