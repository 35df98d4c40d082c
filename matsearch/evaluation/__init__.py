"""The evaluation stage: relaxers and where they run, in this process (`local`) or on Ray (`ray`)."""
