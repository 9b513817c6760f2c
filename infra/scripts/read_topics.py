#!/usr/bin/env python3
"""Read every Tributary topic with standard clients and decode every event.

Uses confluent-kafka's Consumer and its SchemaRegistryClient with the
AvroDeserializer: what an analytics subscriber would use. Prints one JSON
line: messages per topic (from the broker's watermarks), decoded per topic,
and the number of decode errors. Exits non-zero on any error.

    pip install "confluent-kafka[avro,schemaregistry]"
    python3 read_topics.py --bootstrap 127.0.0.1:9092 --registry http://127.0.0.1:8081
"""
import argparse
import decimal
import json
import sys
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

DATA_TYPES = ["companies", "connections", "accounts", "customers", "suppliers", "invoices",
              "bills", "payments", "bank_transactions", "journal_entries"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--data-types", help="comma-separated data types to read instead of the accounting ones")
    args = parser.parse_args()

    data_types = args.data_types.split(",") if args.data_types else DATA_TYPES
    topics = [f"tributary.v1.{t}" for t in data_types] + ["tributary.v1.sync_runs", "tributary.v1.manifests"]
    registry = SchemaRegistryClient({"url": args.registry})
    deserializer = AvroDeserializer(registry)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"read-topics-{time.time()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 50,
    })
    metadata = consumer.list_topics(timeout=10)
    assignment, end = [], {}
    messages = {t: 0 for t in topics}
    for topic in topics:
        for partition in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            messages[topic] += high - low
            if high > low:
                assignment.append(TopicPartition(topic, partition, low))
                end[(topic, partition)] = high
    consumer.assign(assignment)

    decoded = {t: 0 for t in topics}
    errors = 0
    deadline = time.time() + args.timeout
    remaining = dict(end)
    while remaining and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            print(f"error: {msg.error()}", file=sys.stderr)
            errors += 1
            continue
        key = (msg.topic(), msg.partition())
        if msg.offset() >= end[key]:
            # Published after the watermarks were read: not part of this count.
            continue
        try:
            value = deserializer(msg.value(), SerializationContext(msg.topic(), MessageField.VALUE))
            check(msg.topic(), value)
            decoded[msg.topic()] += 1
        except Exception as e:  # noqa: BLE001 - every failure is reported
            print(f"cannot decode {msg.topic()}/{msg.partition()}@{msg.offset()}: {e}", file=sys.stderr)
            errors += 1
        if msg.offset() + 1 >= remaining.get(key, 0):
            remaining.pop(key, None)
    consumer.close()
    if remaining:
        print(f"timed out with unread partitions: {sorted(remaining)}", file=sys.stderr)
        errors += 1
    print(json.dumps({"messages": messages, "decoded": decoded, "errors": errors}))
    sys.exit(1 if errors else 0)


def check(topic, value):
    """The envelope is complete and money decodes as exact decimals."""
    if topic.endswith("sync_runs"):
        assert value["status"] in ("succeeded", "failed", "paused"), value
        return
    if topic.endswith("manifests"):
        assert value["live_count"] >= 0 and len(value["digest"]) == 32, value
        return
    for field in ("event_id", "company_id", "connection_id", "data_type", "source_record_id"):
        assert value[field], f"{field} is empty"
    assert topic.endswith("." + value["data_type"]), (topic, value["data_type"])
    record = value["record"]
    if value["data_type"] == "invoices" and record is not None:
        assert isinstance(record["total"], decimal.Decimal), type(record["total"])
        assert record["subtotal"] + record["tax_total"] == record["total"], record
    if value["data_type"] in ("commerce_payments", "refunds", "disputes") and record is not None:
        assert isinstance(record["amount"], decimal.Decimal), type(record["amount"])
    if value["data_type"] in ("bank_balances", "bank_feed_transactions") and record is not None:
        # Scale 5: five decimal places survive the standard client.
        assert isinstance(record["amount"], decimal.Decimal), type(record["amount"])
        assert record["amount"].as_tuple().exponent == -5, record["amount"]


if __name__ == "__main__":
    main()
