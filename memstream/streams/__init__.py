"""Topics, the input codec and producers: how records get onto and off the log.

Importing this package turns off topic auto-creation for every Kafka client in the process
(see :mod:`memstream.streams.kafka`)."""

from memstream.streams.kafka import no_topic_auto_creation

no_topic_auto_creation()
