"""Message delivery: the command consumer and its dispatch, the transactional outbox and
its relay, the result relay to the gateway, the pipeline tables and Kafka topics."""
