"""The node: composition root, services, scheduler, feed pipelines."""
