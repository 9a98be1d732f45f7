"""The pipeline on one machine: template.yaml deployed into moto, handlers run locally."""
