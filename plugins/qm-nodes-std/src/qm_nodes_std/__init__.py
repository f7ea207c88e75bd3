"""qm-nodes-std: The standard non-LLM node executors of Quartermaster."""
