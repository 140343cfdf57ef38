"""The report engine: facts.py gathers the figures from the run's artifacts, document.py and data_story.py turn them
into one list of blocks (blocks.py), markdown.py and html.py render that list. The report stage
(pipeline/stages/report.py) reads the artifacts, calls this engine and writes the files."""
