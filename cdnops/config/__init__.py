"""Configuration side: typed models, YAML with marks, inventory."""
