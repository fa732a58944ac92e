"""Agent runs: launching, the durable step loop, events and cancellation."""
