"""Ray plumbing: the Ray session, launching each role's actors with its resources, placement, deadlines and
supervision of the actors. May import actors/, config/ and core/."""
