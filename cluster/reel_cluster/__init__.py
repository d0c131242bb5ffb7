"""reel-cluster: one reel-curate per node of a Ray cluster, fed by one driver.

Ray keeps membership, placement, failure detection and the driver; reel-curate
does everything inside each node. Modules:

  cli     the command line: `reel-cluster curate --address A [reel-curate flags]`
  inputs  the list of videos (a directory, a file or standard input)
  node    the node actor: reel-curate --inputs-from - --results-jsonl -
  driver  hands videos out, takes results back, survives nodes that die
"""
