"""Stage entry points that dvc.yaml runs (stages/run <stage>): read params, call lrd, log."""
