from lowlight.cli.main import console

console()
