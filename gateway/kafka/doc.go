// Package kafka is sendcore's Kafka adapter: the requests Source (a member of a kafka-go
// ConsumerGroup that fetches all its partitions of a broker in one request, with
// per-partition contiguous commits), the events and DLQ writers, the opt-out
// topic, and the embedded Kafka-protocol broker (franz-go's kfake) that `demo`, `bench`,
// tests, and `run` without brokers use.
//
// Place in the pipeline: gateway/kafka ──> dispatch. It speaks Kafka and nothing else.
package kafka
