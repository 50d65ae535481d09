"""Registry change events: what MLflow's model-registry webhooks said happened (an alias moved or was
removed, a version was registered), kept as sloguard's alias history (MLflow keeps none), shown on the
model's open incidents and read as suspect evidence when the metrics carry no version label."""
