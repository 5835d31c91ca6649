"""Where images come from: folders (labels from sub-folders or a CSV) and Oxford Flowers-102."""
