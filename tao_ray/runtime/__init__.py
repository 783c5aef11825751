"""Ray plumbing: the Ray session, launching each role's actors with its resources, placement, deadlines and
supervision of the actors, and the Ray Data embedding pool behind `ingest`. May import actors/, config/, core/ and
data/."""
