"""The networks and what is built on them: `networks` builds the conditional generator and
discriminator (`dcgan` or `resnet`, taking the label as `conditioning` describes, from the custom
`layers`); `model_files` saves and loads an exported generator; `sampling` draws images from one.
Imports cgan.core only."""
