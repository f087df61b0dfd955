from memstream.cli import main

main(prog_name="memstream")
