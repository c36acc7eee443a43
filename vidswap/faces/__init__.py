"""vidswap.faces"""
